// The JavaScript surface of the addon: a Bus object the control plane starts,
// feeds configuration into, and answers driver calls through. Errors at the
// engine boundary are errno values; they become exceptions only here.
#include <napi.h>
#include <fcntl.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <memory>
#include <vector>

#include "engine/policy.h"
#include "policy_js.h"
#include "peer.h"
#include "server.h"
#include "util/snapshot_io.h"

namespace {

using bridge::Server;
using kdbus::ConnId;

// D-Bus RequestName flags and replies.
constexpr uint32_t kDBusAllowReplacement = 0x1;
constexpr uint32_t kDBusReplaceExisting = 0x2;
constexpr uint32_t kDBusDoNotQueue = 0x4;
enum RequestNameReply : int32_t { kPrimaryOwner = 1, kInQueue = 2, kExists = 3, kAlreadyOwner = 4 };
enum ReleaseNameReply : int32_t { kReleased = 1, kNonExistent = 2, kNotOwner = 3 };

std::vector<std::string> string_array(const Napi::Value& v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

// dbus-daemon's <limit> names, split between the server and the engine.
void apply_limits(const Napi::Value& v, bridge::ServerLimits& server, kdbus::BusLimits& engine) {
  if (!v.IsObject()) return;
  auto o = v.As<Napi::Object>();
  auto get = [&](const char* name, auto& field) {
    auto x = o.Get(name);
    if (!x.IsNumber()) return;
    double d = x.As<Napi::Number>().DoubleValue();
    field = d > 0 ? static_cast<std::remove_reference_t<decltype(field)>>(d) : 0;
  };
  get("max_message_size", server.max_message_size);
  get("max_message_unix_fds", server.max_message_unix_fds);
  get("max_completed_connections", server.max_completed_connections);
  get("max_incomplete_connections", server.max_incomplete_connections);
  get("max_connections_per_user", server.max_connections_per_user);
  get("reply_timeout", server.reply_timeout_ms);
  get("auth_timeout", server.auth_timeout_ms);
  get("max_replies_per_connection", engine.max_pending_replies);
  get("max_match_rules_per_connection", engine.max_match_rules);
  get("max_names_per_connection", engine.max_names);
  // What waits for a receiver's socket waits in its engine queue.
  get("max_outgoing_bytes", engine.max_queued_bytes);
  get("max_outgoing_unix_fds", engine.max_queued_fds);
  get("max_incoming_bytes", server.max_incoming_bytes);
  get("max_incoming_unix_fds", server.max_incoming_unix_fds);
  get("pending_fd_timeout", server.pending_fd_timeout_ms);
  get("max_incoming_bytes_per_user", server.max_incoming_bytes_per_user);
  get("max_incoming_unix_fds_per_user", server.max_incoming_unix_fds_per_user);
  get("max_names_per_user", engine.max_names_per_user);
  get("max_match_rules_per_user", engine.max_match_rules_per_user);
  get("max_replies_per_user", engine.max_pending_replies_per_user);
}

class BusWrap : public Napi::ObjectWrap<BusWrap>,
                public bridge::DriverHandler,
                public bridge::ActivationHandler,
                public bridge::DenialLog,
                public bridge::MonitorLog {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Bus",
                       {
                           InstanceMethod("listen", &BusWrap::Listen),
                           InstanceMethod("adopt", &BusWrap::Adopt),
                           InstanceMethod("send", &BusWrap::Send),
                           InstanceMethod("sendError", &BusWrap::SendError),
                           InstanceMethod("sendReply", &BusWrap::SendReply),
                           InstanceMethod("requestName", &BusWrap::RequestName),
                           InstanceMethod("releaseName", &BusWrap::ReleaseName),
                           InstanceMethod("getNameOwner", &BusWrap::GetNameOwner),
                           InstanceMethod("listNames", &BusWrap::ListNames),
                           InstanceMethod("listQueuedOwners", &BusWrap::ListQueuedOwners),
                           InstanceMethod("matchRules", &BusWrap::MatchRules),
                           InstanceMethod("becomeMonitor", &BusWrap::BecomeMonitor),
                           InstanceMethod("byebye", &BusWrap::ByeBye),
                           InstanceMethod("setSendPriority", &BusWrap::SetSendPriority),
                           InstanceMethod("setReceivePriority", &BusWrap::SetReceivePriority),
                           InstanceMethod("setAttachFlags", &BusWrap::SetAttachFlags),
                           InstanceMethod("getProcessFacts", &BusWrap::GetProcessFacts),
                           InstanceMethod("setDescription", &BusWrap::SetDescription),
                           InstanceMethod("checkMatchRule", &BusWrap::CheckMatchRule),
                           InstanceMethod("setLimits", &BusWrap::SetLimits),
                           InstanceMethod("setPolicy", &BusWrap::SetPolicy),
                           InstanceMethod("getCredentials", &BusWrap::GetCredentials),
                           InstanceMethod("loginfo", &BusWrap::Loginfo),
                           InstanceMethod("disconnect", &BusWrap::Disconnect),
                           InstanceMethod("stats", &BusWrap::Stats),
                           InstanceMethod("shutdown", &BusWrap::Shutdown),
                           InstanceMethod("addActivator", &BusWrap::AddActivator),
                           InstanceMethod("removeActivator", &BusWrap::RemoveActivator),
                           InstanceMethod("failActivation", &BusWrap::FailActivation),
                           InstanceMethod("freeze", &BusWrap::Freeze),
                           InstanceMethod("thaw", &BusWrap::Thaw),
                           InstanceMethod("abandon", &BusWrap::Abandon),
                       });
  }

  explicit BusWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BusWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "Bus(options) needs an options object");
    auto opts = info[0].As<Napi::Object>();
    bridge::ServerConfig config;
    config.sasl.guid_hex = opts.Get("guid").As<Napi::String>().Utf8Value();
    if (opts.Get("machineId").IsString()) config.machine_id = opts.Get("machineId").As<Napi::String>().Utf8Value();
    config.sasl.allow_anonymous = opts.Get("allowAnonymous").ToBoolean();
    config.sasl.mechanisms = string_array(opts.Get("mechanisms"));
    // Who may connect is the security policy's decision (Bus::can_connect).
    config.sasl.authorize_after = true;
    if (opts.Get("allowedUids").IsArray()) {
      auto uids = opts.Get("allowedUids").As<Napi::Array>();
      for (uint32_t i = 0; i < uids.Length(); ++i)
        config.sasl.allowed_uids.push_back(uids.Get(i).As<Napi::Number>().Uint32Value());
    }
    if (opts.Get("version").IsString()) writer_version_ = "kdbus-bridge " + opts.Get("version").As<Napi::String>().Utf8Value();
    auto cb = opts.Get("onDriverCall");
    if (!cb.IsFunction()) throw Napi::TypeError::New(env, "options.onDriverCall must be a function");
    on_driver_call_ = Napi::Persistent(cb.As<Napi::Function>());
    kdbus::BusLimits engine_limits;
    apply_limits(opts.Get("limits"), config.limits, engine_limits);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    env_ = env;
    server_ = std::make_unique<Server>(loop, std::move(config), this);
    server_->bus().set_limits(engine_limits);
    auto on_activate = opts.Get("onActivate");
    if (on_activate.IsFunction()) {
      on_activate_ = Napi::Persistent(on_activate.As<Napi::Function>());
      server_->set_activation_handler(this);
    }
    auto on_denied = opts.Get("onDenied");
    if (on_denied.IsFunction()) {
      on_denied_ = Napi::Persistent(on_denied.As<Napi::Function>());
      server_->set_denial_log(this);
    }
    auto on_monitor_closed = opts.Get("onMonitorClosed");
    if (on_monitor_closed.IsFunction()) {
      on_monitor_closed_ = Napi::Persistent(on_monitor_closed.As<Napi::Function>());
      server_->set_monitor_log(this);
    }
  }

  ~BusWrap() override {
    if (server_) server_->shutdown();
  }

  // DriverHandler: a call to org.freedesktop.DBus goes up to JavaScript,
  // synchronously, so its reply is queued before anything the client sent
  // after it is routed.
  void driver_call(const bridge::DriverCall& call) override {
    Napi::HandleScope scope(env_);
    const wire::Header& h = *call.header;
    auto obj = Napi::Object::New(env_);
    obj.Set("sender", Napi::String::New(env_, std::string(call.sender_name)));
    obj.Set("serial", Napi::Number::New(env_, h.serial));
    obj.Set("flags", Napi::Number::New(env_, h.flags));
    obj.Set("type", Napi::Number::New(env_, static_cast<int>(h.type)));
    obj.Set("path", Napi::String::New(env_, std::string(h.path)));
    if (h.has_interface) obj.Set("interface", Napi::String::New(env_, std::string(h.interface)));
    obj.Set("member", Napi::String::New(env_, std::string(h.member)));
    obj.Set("signature", Napi::String::New(env_, std::string(h.signature)));
    obj.Set("unixFds", Napi::Boolean::New(env_, call.unix_fds));
    obj.Set("bigEndian", Napi::Boolean::New(env_, h.big_endian));
    obj.Set("body", Napi::Buffer<uint8_t>::Copy(env_, call.data + h.body_offset, call.len - h.body_offset));
    try {
      on_driver_call_.Call({obj});
    } catch (const Napi::Error& e) {
      fprintf(stderr, "kdbus-bridge: driver failed on %s: %s\n", std::string(h.member).c_str(), e.what());
      if (!(h.flags & wire::kNoReplyExpected) && h.type == wire::MsgType::MethodCall)
        server_->send_error(call.sender, h.serial, "org.freedesktop.DBus.Error.Failed", e.Message());
    }
  }

 private:
  Server& server(const Napi::Env& env) {
    if (!server_) throw Napi::Error::New(env, "bus is shut down");
    return *server_;
  }

  ConnId conn(const Napi::Value& v) {
    ConnId id = 0;
    if (!kdbus::parse_unique_name(v.As<Napi::String>().Utf8Value(), id))
      throw Napi::TypeError::New(v.Env(), "not a unique connection name");
    return id;
  }

  Napi::Value Listen(const Napi::CallbackInfo& info) {
    std::vector<std::string> printable;
    std::string err;
    Server::Batch batch(server(info.Env()));
    if (!server(info.Env()).listen(info[0].As<Napi::String>().Utf8Value(), printable, err))
      throw Napi::Error::New(info.Env(), err);
    auto arr = Napi::Array::New(info.Env(), printable.size());
    for (size_t i = 0; i < printable.size(); ++i) arr.Set(i, printable[i]);
    return arr;
  }

  void Adopt(const Napi::CallbackInfo& info) {
    std::string err;
    Server::Batch batch(server(info.Env()));
    if (!server(info.Env()).adopt(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::String>().Utf8Value(), err))
      throw Napi::Error::New(info.Env(), err);
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> bytes(buf.Data(), buf.Data() + buf.Length());
    std::shared_ptr<kdbus::FdSet> fds;
    if (info.Length() > 1 && info[1].IsArray()) {
      auto arr = info[1].As<Napi::Array>();
      if (arr.Length() > 0) fds = std::make_shared<kdbus::FdSet>();
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        int fd = ::fcntl(arr.Get(i).As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
        if (fd < 0) return Napi::Number::New(info.Env(), errno);
        fds->fds.emplace_back(fd);
      }
    }
    Server::Batch batch(server(info.Env()));
    return Napi::Number::New(info.Env(), server(info.Env()).send_from_bus(std::move(bytes), std::move(fds)));
  }

  Napi::Value SendError(const Napi::CallbackInfo& info) {
    Server::Batch batch(server(info.Env()));
    server(info.Env()).send_error(conn(info[0]), info[1].As<Napi::Number>().Uint32Value(),
                                  info[2].As<Napi::String>().Utf8Value(), info[3].As<Napi::String>().Utf8Value());
    return info.Env().Undefined();
  }

  // A method return with a body of one of the shapes most driver methods
  // answer with ("", "s", "u", "b", "as"), written without going through
  // the JavaScript marshaller. Returns false for any other signature.
  Napi::Value SendReply(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string sig = info[2].As<Napi::String>().Utf8Value();
    wire::Writer w(wire::MsgType::MethodReturn, 1, wire::kNoReplyExpected);
    const std::string dest = info[0].As<Napi::String>().Utf8Value();
    w.reply_serial(info[1].As<Napi::Number>().Uint32Value()).destination(dest).sender("org.freedesktop.DBus");
    Napi::Value v = info.Length() > 3 ? info[3] : env.Undefined();
    if (sig == "s") {
      w.add_string(v.As<Napi::String>().Utf8Value());
    } else if (sig == "u") {
      w.add_uint32(v.As<Napi::Number>().Uint32Value());
    } else if (sig == "b") {
      w.add_bool(v.ToBoolean());
    } else if (sig == "as") {
      const std::vector<std::string> strings = string_array(v);
      w.add_string_array(std::vector<std::string_view>(strings.begin(), strings.end()));
    } else if (!sig.empty()) {
      return Napi::Boolean::New(env, false);
    }
    Server::Batch batch(server(env));
    server(env).send_from_bus(w.finish());
    return Napi::Boolean::New(env, true);
  }

  Napi::Value RequestName(const Napi::CallbackInfo& info) {
    ConnId id = conn(info[0]);
    std::string name = info[1].As<Napi::String>().Utf8Value();
    uint32_t dflags = info[2].As<Napi::Number>().Uint32Value();
    uint64_t flags = 0;
    if (dflags & kDBusAllowReplacement) flags |= kdbus::kNameAllowReplacement;
    if (dflags & kDBusReplaceExisting) flags |= kdbus::kNameReplaceExisting;
    if (!(dflags & kDBusDoNotQueue)) flags |= kdbus::kNameQueue;
    uint64_t ret = 0;
    Server::Batch batch(server(info.Env()));
    int rc = server(info.Env()).bus().name_acquire(id, name, flags, ret);
    int32_t reply;
    if (rc == 0)
      reply = (ret & kdbus::kNameInQueue) ? kInQueue : kPrimaryOwner;
    else if (rc == EALREADY)
      reply = kAlreadyOwner;
    else if (rc == EEXIST)
      reply = kExists;
    else
      reply = -rc;
    return Napi::Number::New(info.Env(), reply);
  }

  Napi::Value ReleaseName(const Napi::CallbackInfo& info) {
    ConnId id = conn(info[0]);
    std::string name = info[1].As<Napi::String>().Utf8Value();
    Server::Batch batch(server(info.Env()));
    int rc = server(info.Env()).bus().name_release(id, name);
    int32_t reply = rc == 0 ? kReleased : rc == ESRCH ? kNonExistent : rc == EADDRINUSE ? kNotOwner : -rc;
    return Napi::Number::New(info.Env(), reply);
  }

  Napi::Value GetNameOwner(const Napi::CallbackInfo& info) {
    ConnId id = 0;
    if (server(info.Env()).bus().name_owner(info[0].As<Napi::String>().Utf8Value(), id) != 0) return info.Env().Null();
    return Napi::String::New(info.Env(), kdbus::unique_name(id));
  }

  Napi::Value ListNames(const Napi::CallbackInfo& info) {
    std::vector<kdbus::NameOwnerInfo> names;
    server(info.Env()).bus().list(kdbus::kListUnique | kdbus::kListNames, names);
    auto arr = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i)
      arr.Set(i, names[i].name.empty() ? kdbus::unique_name(names[i].id) : names[i].name);
    return arr;
  }

  Napi::Value ListQueuedOwners(const Napi::CallbackInfo& info) {
    std::vector<ConnId> ids;
    if (server(info.Env()).bus().queued_owners(info[0].As<Napi::String>().Utf8Value(), ids) != 0)
      return info.Env().Null();
    auto arr = Napi::Array::New(info.Env(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) arr.Set(i, kdbus::unique_name(ids[i]));
    return arr;
  }

  // The compiled <policy> rules; replaces the running policy at once.
  Napi::Value SetPolicy(const Napi::CallbackInfo& info) {
    server(info.Env()).bus().set_policy(bridge::policy_from_js(info[0]));
    return info.Env().Undefined();
  }

  Napi::Value SetLimits(const Napi::CallbackInfo& info) {
    Server& s = server(info.Env());
    bridge::ServerLimits server_limits;
    kdbus::BusLimits engine_limits = s.bus().limits();
    apply_limits(info[0], server_limits, engine_limits);
    s.set_limits(server_limits);
    s.bus().set_limits(engine_limits);
    return info.Env().Undefined();
  }

  Napi::Value CheckMatchRule(const Napi::CallbackInfo& info) {
    kdbus::MatchRule rule;
    std::string err;
    if (!kdbus::MatchRule::parse(info[0].As<Napi::String>().Utf8Value(), rule, err))
      return Napi::String::New(info.Env(), err);
    return info.Env().Null();
  }

  // Returns null when done, or why a rule is invalid.
  Napi::Value BecomeMonitor(const Napi::CallbackInfo& info) {
    ConnId id = conn(info[0]);
    std::vector<kdbus::MatchRule> filter;
    for (const std::string& text : string_array(info[1])) {
      kdbus::MatchRule rule;
      std::string err;
      if (!kdbus::MatchRule::parse(text, rule, err)) return Napi::String::New(info.Env(), err);
      filter.push_back(std::move(rule));
    }
    int rc = server(info.Env()).become_monitor(id, std::move(filter));
    if (rc != 0) return Napi::String::New(info.Env(), std::strerror(rc));
    return info.Env().Null();
  }

  // 0, or the errno of Server::byebye.
  Napi::Value ByeBye(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), server(info.Env()).byebye(conn(info[0])));
  }

  // The priority is a BigInt (D-Bus 'x'). False for an unknown connection.
  Napi::Value SetSendPriority(const Napi::CallbackInfo& info) {
    bridge::Peer* p = server(info.Env()).peer(conn(info[0]));
    bool lossless = false;
    const int64_t priority = info[1].As<Napi::BigInt>().Int64Value(&lossless);
    if (p == nullptr || !lossless) return Napi::Boolean::New(info.Env(), false);
    p->set_send_priority(priority);
    return Napi::Boolean::New(info.Env(), true);
  }

  Napi::Value SetReceivePriority(const Napi::CallbackInfo& info) {
    bridge::Peer* p = server(info.Env()).peer(conn(info[0]));
    if (p == nullptr) return Napi::Boolean::New(info.Env(), false);
    p->set_receive_priority(info[1].ToBoolean());
    return Napi::Boolean::New(info.Env(), true);
  }

  Napi::Value SetAttachFlags(const Napi::CallbackInfo& info) {
    const ConnId id = conn(info[0]);
    bridge::Peer* p = server(info.Env()).peer(id);
    const uint64_t flags = info[1].As<Napi::Number>().Uint32Value();
    if (p == nullptr || server(info.Env()).bus().set_attach_flags(id, flags) != 0) return Napi::Boolean::New(info.Env(), false);
    p->set_attach_flags(flags);
    return Napi::Boolean::New(info.Env(), true);
  }

  Napi::Value SetDescription(const Napi::CallbackInfo& info) {
    bridge::Peer* p = server(info.Env()).peer(conn(info[0]));
    if (p == nullptr) return Napi::Boolean::New(info.Env(), false);
    p->set_description(info[1].As<Napi::String>().Utf8Value());
    return Napi::Boolean::New(info.Env(), true);
  }

  // What /proc says of a client's process: { ppid, comm, tidComm, exe,
  // cmdline (Buffer), cgroup, caps ([inheritable, permitted, effective,
  // bounding] as bigint, or null), loginuid and sessionid (or null), names,
  // description }, or null when the connection or its pid is unknown.
  Napi::Value GetProcessFacts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    kdbus::ConnInfo ci;
    if (server(env).bus().conn_info(0, info[0].As<Napi::String>().Utf8Value(), ci) != 0) return env.Null();
    bridge::Peer* p = server(env).peer(ci.id);
    if (p == nullptr || !p->metadata().has_creds) return env.Null();
    const kdbus::ProcessFacts& f = p->facts();
    auto obj = Napi::Object::New(env);
    obj.Set("ppid", Napi::Number::New(env, f.ppid));
    obj.Set("comm", f.comm);
    obj.Set("exe", f.exe);
    obj.Set("cmdline", Napi::Buffer<char>::Copy(env, f.cmdline.data(), f.cmdline.size()));
    obj.Set("cgroup", f.cgroup);
    obj.Set("tidComm", f.tid_comm);
    if (f.has_caps) {
      auto caps = Napi::Array::New(env, 4);
      for (uint32_t i = 0; i < 4; ++i) caps.Set(i, Napi::BigInt::New(env, f.caps[i]));
      obj.Set("caps", caps);
    } else {
      obj.Set("caps", env.Null());
    }
    obj.Set("loginuid", f.has_audit ? Napi::Number::New(env, f.loginuid) : env.Null());
    obj.Set("sessionid", f.has_audit ? Napi::Number::New(env, f.sessionid) : env.Null());
    obj.Set("description", std::string(p->description()));
    auto names = Napi::Array::New(env, ci.names.size());
    for (size_t i = 0; i < ci.names.size(); ++i) names.Set(i, ci.names[i]);
    obj.Set("names", names);
    return obj;
  }

  Napi::Value MatchRules(const Napi::CallbackInfo& info) {
    std::vector<const kdbus::MatchRule*> rules;
    server(info.Env()).bus().match_rules(conn(info[0]), rules);
    auto arr = Napi::Array::New(info.Env(), rules.size());
    for (size_t i = 0; i < rules.size(); ++i) arr.Set(i, rules[i]->to_string());
    return arr;
  }

  // dbus-daemon's description of a connection in its logs
  // ("uid=0 pid=12 comm=\"...\""); empty when there is no such connection.
  Napi::Value Loginfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    kdbus::ConnInfo ci;
    if (server(env).bus().conn_info(0, info[0].As<Napi::String>().Utf8Value(), ci) != 0 || !ci.metadata)
      return Napi::String::New(env, "");
    return Napi::String::New(env, kdbus::loginfo(*ci.metadata));
  }

  Napi::Value GetCredentials(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    kdbus::ConnInfo ci;
    std::string name = info[0].As<Napi::String>().Utf8Value();
    if (server(env).bus().conn_info(0, name, ci) != 0 || !ci.metadata) return env.Null();
    const kdbus::Metadata& m = *ci.metadata;
    auto obj = Napi::Object::New(env);
    obj.Set("unique", kdbus::unique_name(ci.id));
    if (m.has_creds) {
      obj.Set("uid", Napi::Number::New(env, m.uid));
      obj.Set("gid", Napi::Number::New(env, m.gid));
      obj.Set("pid", Napi::Number::New(env, m.pid));
    }
    if (m.has_groups) {
      auto arr = Napi::Array::New(env, m.groups.size());
      for (size_t i = 0; i < m.groups.size(); ++i) arr.Set(i, Napi::Number::New(env, m.groups[i]));
      obj.Set("groups", arr);
    }
    if (m.has_seclabel) obj.Set("seclabel", Napi::Buffer<char>::Copy(env, m.seclabel.data(), m.seclabel.size()));
    std::shared_ptr<util::UniqueFd> pidfd = m.pidfd ? m.pidfd : server(env).peer_pidfd(ci.id);
    if (pidfd && pidfd->valid()) obj.Set("pidfd", Napi::Number::New(env, pidfd->get()));
    return obj;
  }

  Napi::Value Disconnect(const Napi::CallbackInfo& info) {
    Server::Batch batch(server(info.Env()));
    server(info.Env()).disconnect(conn(info[0]), "disconnected by the bus");
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    auto s = server(info.Env()).bus().stats();
    auto obj = Napi::Object::New(info.Env());
    obj.Set("connections", Napi::Number::New(info.Env(), static_cast<double>(s.connections)));
    obj.Set("names", Napi::Number::New(info.Env(), static_cast<double>(s.names)));
    obj.Set("matchRules", Napi::Number::New(info.Env(), static_cast<double>(s.match_rules)));
    obj.Set("messagesSent", Napi::Number::New(info.Env(), static_cast<double>(s.messages_sent)));
    return obj;
  }

  // ActivationHandler: the first call waiting for the name is described
  // (peeked, not taken) so the start can be logged with who caused it.
  void activation_needed(const std::string& name, const kdbus::Delivery& first) override {
    Napi::HandleScope scope(env_);
    auto obj = Napi::Object::New(env_);
    const kdbus::Message& m = *first.msg;
    const bool from_bus = m.src_id == kdbus::kIdBus;  // e.g. a request meant for systemd
    obj.Set("sender", Napi::String::New(env_, from_bus ? std::string("org.freedesktop.DBus") : kdbus::unique_name(m.src_id)));
    obj.Set("serial", Napi::Number::New(env_, static_cast<double>(m.cookie)));
    obj.Set("path", Napi::String::New(env_, std::string(m.view.path)));
    if (!m.view.interface.empty()) obj.Set("interface", Napi::String::New(env_, std::string(m.view.interface)));
    obj.Set("member", Napi::String::New(env_, std::string(m.view.member)));
    kdbus::ConnInfo ci;
    if (server_->bus().conn_info(m.src_id, {}, ci) == 0 && ci.metadata && ci.metadata->has_creds) {
      obj.Set("pid", Napi::Number::New(env_, ci.metadata->pid));
      obj.Set("uid", Napi::Number::New(env_, ci.metadata->uid));
    }
    try {
      on_activate_.Call({Napi::String::New(env_, name), obj});
    } catch (const Napi::Error& e) {
      fprintf(stderr, "kdbus-bridge: activation of %s failed: %s\n", name.c_str(), e.what());
    }
  }

  // DenialLog: the control plane owns where logs go (stderr, syslog).
  void denied(const std::string& text) override {
    Napi::HandleScope scope(env_);
    try {
      on_denied_.Call({Napi::String::New(env_, text)});
    } catch (const Napi::Error&) {
      fprintf(stderr, "kdbus-bridge: %s\n", text.c_str());
    }
  }

  // MonitorLog: likewise.
  void monitor_closed(const std::string& name) override {
    Napi::HandleScope scope(env_);
    try {
      on_monitor_closed_.Call({Napi::String::New(env_, name)});
    } catch (const Napi::Error&) {
      fprintf(stderr, "kdbus-bridge: Monitoring connection %s closed.\n", name.c_str());
    }
  }

  // Returns the activator's id, or a negative errno.
  Napi::Value AddActivator(const Napi::CallbackInfo& info) {
    ConnId id = 0;
    int rc = server(info.Env()).add_activator(info[0].As<Napi::String>().Utf8Value(), id);
    return Napi::Number::New(info.Env(), rc == 0 ? static_cast<double>(id) : -rc);
  }

  Napi::Value RemoveActivator(const Napi::CallbackInfo& info) {
    int rc = server(info.Env()).remove_activator(info[0].As<Napi::String>().Utf8Value());
    return Napi::Boolean::New(info.Env(), rc == 0);
  }

  // Returns how many waiting calls were answered with the error, or -1 when
  // the name has no activator.
  Napi::Value FailActivation(const Napi::CallbackInfo& info) {
    size_t answered = 0;
    int rc = server(info.Env()).fail_activation(info[0].As<Napi::String>().Utf8Value(),
                                                info[1].As<Napi::String>().Utf8Value(),
                                                info[2].As<Napi::String>().Utf8Value(), answered);
    return Napi::Number::New(info.Env(), rc == 0 ? static_cast<double>(answered) : -1);
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    if (server_) {
      server_->shutdown();
      server_.reset();
    }
    return info.Env().Undefined();
  }

  // Handover (docs/handover-native.md).
  Napi::Value Freeze(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Server& s = server(env);
    s.freeze();
    snap::Writer w;
    const size_t at = snap::begin_envelope(w, writer_version_);
    s.save(w);
    snap::seal(w, at);
    Napi::Object out = Napi::Object::New(env);
    out.Set("state", Napi::Buffer<uint8_t>::Copy(env, w.buffer().data(), w.buffer().size()));
    Napi::Array fds = Napi::Array::New(env, w.fds().size());
    for (uint32_t i = 0; i < w.fds().size(); ++i) fds.Set(i, Napi::Number::New(env, w.fds()[i]));
    out.Set("fds", fds);
    return out;
  }

  Napi::Value Thaw(const Napi::CallbackInfo& info) {
    server(info.Env()).thaw();
    return info.Env().Undefined();
  }

  Napi::Value Abandon(const Napi::CallbackInfo& info) {
    server(info.Env()).abandon();
    return info.Env().Undefined();
  }

 public:
  // Fills this new bus from a snapshot; on failure it is shut down and the
  // reason thrown. Either way the fds given are the bus's from then on: it
  // keeps those the state names and closes the rest.
  void restore_from(Napi::Env env, const Napi::Buffer<uint8_t>& state, std::vector<int> fds) {
    snap::FdTable table(std::move(fds));
    try {
      std::string writer;
      snap::Reader r = snap::open_envelope(state.Data(), state.Length(), &table, writer);
      server(env).restore(r);
    } catch (const snap::FormatError& e) {
      if (server_) {
        server_->shutdown();
        server_.reset();
      }
      throw Napi::Error::New(env, std::string("cannot restore the bus: ") + e.what());
    }
  }

 private:
  std::string writer_version_ = "kdbus-bridge";
  Napi::Env env_ = nullptr;
  Napi::FunctionReference on_driver_call_;
  Napi::FunctionReference on_activate_;
  Napi::FunctionReference on_denied_;
  Napi::FunctionReference on_monitor_closed_;
  std::unique_ptr<Server> server_;
};

}  // namespace

namespace bridge {
void register_syslog(Napi::Env env, Napi::Object exports);
void register_notify(Napi::Env env, Napi::Object exports);
void register_inherited(Napi::Env env, Napi::Object exports);
void register_fdpass(Napi::Env env, Napi::Object exports);
}  // namespace bridge

namespace {

// restore(state, fds, options): a Bus made with `options` that goes on
// where the frozen one stopped. checkState(state): null when this build
// can read the snapshot, else why not.
void register_snapshot(Napi::Env env, Napi::Object exports, Napi::Function bus_class) {
  auto ctor = std::make_shared<Napi::FunctionReference>(Napi::Persistent(bus_class));
  ctor->SuppressDestruct();
  exports.Set("restore", Napi::Function::New(env, [ctor](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsBuffer() || !info[1].IsArray() || !info[2].IsObject())
      throw Napi::TypeError::New(env, "restore(state: Buffer, fds: number[], options)");
    auto list = info[1].As<Napi::Array>();
    std::vector<int> fds;
    for (uint32_t i = 0; i < list.Length(); ++i) fds.push_back(list.Get(i).As<Napi::Number>().Int32Value());
    Napi::Object bus = ctor->New({info[2]});
    BusWrap::Unwrap(bus)->restore_from(env, info[0].As<Napi::Buffer<uint8_t>>(), std::move(fds));
    return bus;
  }, "restore"));
  exports.Set("checkState", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "checkState(state: Buffer)");
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    try {
      std::string writer;
      snap::Reader r = snap::open_envelope(buf.Data(), buf.Length(), nullptr, writer);
      uint32_t tag = 0;
      snap::Reader body(nullptr, 0);
      bool engine = false;
      while (r.next_section(tag, body)) engine = engine || tag == snap::tag("ENGN");
      if (!engine) return Napi::String::New(env, "snapshot: no ENGN section");
    } catch (const snap::FormatError& e) {
      return Napi::String::New(env, e.what());
    }
    return env.Null();
  }, "checkState"));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function bus_class = BusWrap::Define(env);
  exports.Set("Bus", bus_class);
  register_snapshot(env, exports, bus_class);
  bridge::register_syslog(env, exports);
  bridge::register_notify(env, exports);
  bridge::register_inherited(env, exports);
  bridge::register_fdpass(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kdbus_native, Init)
