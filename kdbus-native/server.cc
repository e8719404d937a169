#include "server.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "peer.h"
#include "wire/fields.h"

namespace bridge {

namespace {

constexpr const char* kBusName = "org.freedesktop.DBus";
// How long listeners rest when out of fds and no client has gone since.
constexpr uint64_t kFdRetryMs = 500;
// Freed memory worth handing back to the kernel, and how often at most.
constexpr size_t kTrimAfterBytes = 16 * 1024 * 1024;
constexpr uint64_t kTrimDelayMs = 1000;

// As dbus-daemon: as root, at least 65536 fds; anyone may raise the soft
// limit to the hard one.
void raise_fd_limit() {
  constexpr rlim_t kEnoughFds = 65536;
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (::getuid() == 0) {
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < kEnoughFds) lim.rlim_cur = kEnoughFds;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < lim.rlim_cur) lim.rlim_max = lim.rlim_cur;
    if (::setrlimit(RLIMIT_NOFILE, &lim) == 0) return;
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur == lim.rlim_max) return;
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace

Server::Server(uv_loop_t* loop, ServerConfig config, DriverHandler* driver)
    : loop_(loop), config_(std::move(config)), driver_(driver), bus_(this) {
  raise_fd_limit();
  spare_fd_ = util::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!poller_.valid()) return;  // listen() reports it
  poller_watch_ = std::make_unique<uv_poll_t>();
  uv_poll_init(loop_, poller_watch_.get(), poller_.fd());
  poller_watch_->data = this;
  watch_poller();
}

void Server::watch_poller() {
  uv_poll_start(poller_watch_.get(), UV_READABLE, [](uv_poll_t* h, int status, int) {
    if (status == 0) static_cast<Server*>(h->data)->on_sockets_ready();
  });
}

void Server::on_sockets_ready() {
  constexpr int kEvents = 128;
  struct epoll_event ev[kEvents];
  // A few rounds at most: libuv comes back while the poller is still ready.
  // Closed peers are released only in the check phase, so every pointer in
  // a round stays valid through it.
  for (int round = 0; round < 4; ++round) {
    const int n = poller_.ready(ev, kEvents);
    // New connections first, each answered (its batch flushed) at once.
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<Pollable*>(ev[i].data.ptr);
      if (p->is_listener()) p->on_events(ev[i].events);
    }
    {
      Batch batch(*this);
      for (int i = 0; i < n; ++i) {
        auto* p = static_cast<Pollable*>(ev[i].data.ptr);
        if (!p->is_listener()) p->on_events(ev[i].events);
      }
    }
    if (n < kEvents) break;
  }
}

void Server::read_later(Peer* p) {
  if (p->unread) return;
  p->unread = true;
  unread_.push_back(p);
  if (!unread_idle_) {
    unread_idle_ = std::make_unique<uv_idle_t>();
    uv_idle_init(loop_, unread_idle_.get());
    unread_idle_->data = this;
  }
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(unread_idle_.get())))
    uv_idle_start(unread_idle_.get(), [](uv_idle_t* h) { static_cast<Server*>(h->data)->on_idle(); });
}

void Server::on_idle() {
  Batch batch(*this);
  std::vector<Peer*> turn;
  turn.swap(unread_);
  for (Peer* p : turn) p->unread = false;
  for (Peer* p : turn) {
    if (!p->closed()) p->on_events(EPOLLIN | EPOLLRDHUP);  // what was left unread, to the end
  }
  if (unread_.empty()) uv_idle_stop(unread_idle_.get());
}

Server::~Server() {
  shutdown();
  // Charges held by messages still in the engine may outlive the peers.
  for (auto& kv : user_accounts_) {
    if (auto a = kv.second.lock()) a->set_listener(nullptr);
  }
}

std::shared_ptr<kdbus::Account> Server::user_account(uid_t uid) {
  std::weak_ptr<kdbus::Account>& slot = user_accounts_[uid];
  std::shared_ptr<kdbus::Account> a = slot.lock();
  if (!a) {
    a = std::make_shared<kdbus::Account>();
    a->set_listener(this);
    slot = a;
  }
  return a;
}

// Rare (only after the user was over its quota), so a walk over the peers
// is cheaper than keeping a list per user up to date.
void Server::account_drained(kdbus::Account& a) {
  for (auto& kv : peers_) {
    Peer* p = kv.first;
    if (!p->closed() && p->user_account().get() == &a) read_later(p);
  }
}

bool Server::listen(std::string_view addresses, std::vector<std::string>& printable, std::string& err) {
  if (!poller_.valid()) {
    err = std::string("cannot create an epoll instance: ") + std::strerror(poller_.error());
    return false;
  }
  std::vector<wire::Listener> bound;
  if (!wire::listen_addresses(addresses, config_.sasl.guid_hex, bound, err)) return false;
  for (auto& l : bound) {
    printable.push_back(l.connect_address);
    if (!watch(std::move(l), err)) return false;
  }
  return true;
}

bool Server::adopt(int fd, std::string_view connect_address, std::string& err) {
  if (!poller_.valid()) {
    err = std::string("cannot create an epoll instance: ") + std::strerror(poller_.error());
    return false;
  }
  wire::Listener l;
  if (!wire::adopt_listener(fd, connect_address, l, err)) return false;
  return watch(std::move(l), err);
}

bool Server::watch(wire::Listener l, std::string& err) {
  auto ls = std::make_unique<ListenSocket>();
  ls->server = this;
  ls->listener = std::move(l);
  if (int e = poller_.add_listener(ls->listener.fd.get(), ls.get())) {
    err = std::string("cannot watch the listening socket: ") + std::strerror(e);
    return false;
  }
  listeners_.push_back(std::move(ls));
  return true;
}

// One connection per wakeup: the listener stays readable while more wait,
// and a second accept would mostly just find none.
void Server::on_accept(ListenSocket& ls) {
  Peer* p = accept_one(ls);
  // Watched only once its answers are written: they go out first.
  if (p != nullptr && !p->closed()) p->watch();
}

Peer* Server::accept_one(ListenSocket& ls) {
  Batch batch(*this);
  int fd;
  do {
    fd = ::accept4(ls.listener.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE) out_of_fds(ls);
    return nullptr;  // EAGAIN: nobody waits
  }
  if (config_.limits.max_incomplete_connections != 0 && incomplete_ >= config_.limits.max_incomplete_connections) {
    ::close(fd);  // as dbus-daemon: too many connections still authenticating
    return nullptr;
  }
  auto peer = std::make_unique<Peer>(*this, util::UniqueFd(fd), ls.listener.is_unix);
  Peer* p = peer.get();
  ++incomplete_;
  p->accepted_at_ms = uv_now(loop_);
  peers_.emplace(p, std::move(peer));
  p->start();
  arm_sweep();
  return p;
}

// A level-triggered listener that cannot be accepted from would wake the
// loop at once again: the clients waiting are accepted with the spare fd and
// closed at once (they see the connection end before authenticating), and
// if even that fails the listeners rest until a client goes or a timer.
void Server::out_of_fds(ListenSocket& ls) {
  if (spare_fd_.valid()) {
    spare_fd_.reset();
    for (;;) {
      int fd = ::accept4(ls.listener.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && errno == EINTR) continue;
      if (fd < 0) break;
      ::close(fd);
    }
    spare_fd_ = util::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (spare_fd_.valid()) return;
  }
  if (listeners_paused_) return;
  listeners_paused_ = true;
  for (auto& l : listeners_) {
    if (l->listener.fd.valid()) poller_.pause_listener(l->listener.fd.get(), l.get(), true);
  }
  if (!resume_timer_) {
    resume_timer_ = std::make_unique<uv_timer_t>();
    uv_timer_init(loop_, resume_timer_.get());
    resume_timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(resume_timer_.get()));
  }
  uv_timer_start(resume_timer_.get(), [](uv_timer_t* t) { static_cast<Server*>(t->data)->resume_listeners(); },
                 kFdRetryMs, 0);
}

void Server::resume_listeners() {
  if (!listeners_paused_) return;
  listeners_paused_ = false;
  if (resume_timer_) uv_timer_stop(resume_timer_.get());
  if (!spare_fd_.valid()) spare_fd_ = util::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  for (auto& l : listeners_) {
    if (l->listener.fd.valid()) poller_.pause_listener(l->listener.fd.get(), l.get(), false);
  }
}

void Server::trim_later() {
  if (!trim_timer_) {
    trim_timer_ = std::make_unique<uv_timer_t>();
    uv_timer_init(loop_, trim_timer_.get());
    trim_timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(trim_timer_.get()));
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(trim_timer_.get()))) return;
  uv_timer_start(trim_timer_.get(), [](uv_timer_t*) { ::malloc_trim(0); }, kTrimDelayMs, 0);
}

// Closed peers (and their sockets) are released after the loop's poll
// phase, once what the wakeup brought in has been answered.
void Server::release_later() {
  if (!release_check_) {
    release_check_ = std::make_unique<uv_check_t>();
    uv_check_init(loop_, release_check_.get());
    release_check_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(release_check_.get()));
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(release_check_.get()))) return;
  uv_check_start(release_check_.get(), [](uv_check_t* h) {
    auto* self = static_cast<Server*>(h->data);
    uv_check_stop(h);
    self->dying_.clear();
    // Their fds are free again.
    self->resume_listeners();
  });
}

uint32_t Server::next_serial() {
  if (++serial_ == 0) serial_ = 1;
  return serial_;
}

int Server::send_from_bus(std::vector<uint8_t> bytes, std::shared_ptr<kdbus::FdSet> fds, kdbus::ConnId as) {
  Batch batch(*this);
  if (bytes.size() < wire::kFixedHeaderSize) return EINVAL;
  // The serial of everything the bus sends comes from one counter.
  return route_from_bus(std::move(bytes), std::move(fds), as, true);
}

int Server::send_trusted_from_bus(std::vector<uint8_t> bytes) {
  Batch batch(*this);
  if (bytes.size() < wire::kFixedHeaderSize) return EINVAL;
  return route_from_bus(std::move(bytes), nullptr, kdbus::kIdBus, false);
}

int Server::route_from_bus(std::vector<uint8_t> bytes, std::shared_ptr<kdbus::FdSet> fds, kdbus::ConnId as,
                           bool validate) {
  uint32_t serial = next_serial();
  if (bytes[0] == 'B') serial = __builtin_bswap32(serial);
  std::memcpy(bytes.data() + 8, &serial, 4);
  auto msg = std::make_shared<kdbus::Message>();
  msg->payload.head = std::move(bytes);
  const std::vector<uint8_t>& head = msg->payload.head;
  wire::Header h;
  std::string err;
  if (!validate) wire::read_trusted_fields(head.data(), head.size(), h);
  else if (!wire::parse_message(head.data(), head.size(), h, err)) return EINVAL;
  msg->fds = std::move(fds);
  describe(h, *msg);
  if (!h.has_destination) {
    msg->dst_id = kdbus::kDstBroadcast;
  } else if (!kdbus::parse_unique_name(h.destination, msg->dst_id)) {
    msg->dst_id = kdbus::kDstName;
    msg->dst_name = std::string(h.destination);
  } else if (h.has_reply_serial && as == kdbus::kIdBus) {
    // The bus's answers count against the caller: one that calls the driver
    // without reading the answers stops being read, like any sender.
    auto it = by_id_.find(msg->dst_id);
    if (it != by_id_.end())
      msg->charge = kdbus::Charge(it->second->account(), it->second->user_account(), msg->payload.size(),
                                  msg->fds ? msg->fds->fds.size() : 0);
  }
  const kdbus::ConnId dst = msg->dst_id;
  int rc = bus_.send(as, msg);
  // The bus does not wait for anyone: a client whose queue cannot take the
  // bus's own message has fallen too far behind to be kept.
  if (rc == ENOBUFS && as == kdbus::kIdBus && dst != kdbus::kDstName && dst != kdbus::kDstBroadcast) {
    auto it = by_id_.find(dst);
    if (it != by_id_.end()) overflowed_.push_back(dst);
  }
  // The bus's own message refused by its recipient's policy: nobody is told
  // but monitors, which see it and the refusal.
  if (rc == EACCES && as == kdbus::kIdBus && bus_.has_monitors()) bus_.observe_denied(kdbus::kIdBus, std::move(msg));
  return rc;
}

void describe(const wire::Header& h, kdbus::Message& msg) {
  msg.view.type = static_cast<uint8_t>(h.type);
  msg.view.path = h.path;
  msg.view.interface = h.interface;
  msg.view.member = h.member;
  msg.view.destination = h.destination;
  msg.view.error_name = h.error_name;
  msg.cookie = h.serial;
  if (h.has_reply_serial) msg.cookie_reply = h.reply_serial;
  switch (h.type) {
    case wire::MsgType::Signal:
      msg.flags |= kdbus::kMsgSignal;
      if (h.body_length != 0) {
        const kdbus::Payload& p = msg.payload;
        const uint8_t* body = p.body != nullptr ? p.body : p.head.data() + h.body_offset;
        wire::for_each_string_arg(h, body, h.body_length, [&](uint8_t index, char type, std::string_view v) {
          msg.view.args.push_back({index, type, v});
        });
      }
      break;
    case wire::MsgType::MethodCall:
      if (!(h.flags & wire::kNoReplyExpected)) msg.flags |= kdbus::kMsgExpectReply;
      break;
    default:
      break;
  }
  if (h.flags & wire::kNoAutoStart) msg.flags |= kdbus::kMsgNoAutoStart;
}

void Server::send_error(kdbus::ConnId dest, uint32_t reply_serial, std::string_view name, std::string_view text) {
  wire::Writer w(wire::MsgType::Error, 1, wire::kNoReplyExpected);
  w.error_name(name).reply_serial(reply_serial).sender(kBusName).destination(kdbus::unique_name(dest));
  w.add_string(text);
  send_from_bus(w.finish());
}

int Server::byebye(kdbus::ConnId id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return ENXIO;
  // Taken from the engine is not yet received: the client has not seen it.
  if (it->second->has_output()) return EBUSY;
  Batch batch(*this);
  return bus_.byebye(id);
}

int Server::become_monitor(kdbus::ConnId id, std::vector<kdbus::MatchRule> filter) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return ENXIO;
  Batch batch(*this);
  int rc = bus_.become_monitor(id, std::move(filter));
  if (rc == 0) it->second->become_monitor();
  return rc;
}

std::shared_ptr<util::UniqueFd> Server::peer_pidfd(kdbus::ConnId id) {
  auto it = by_id_.find(id);
  return it != by_id_.end() ? it->second->pidfd() : nullptr;
}

void Server::disconnect(kdbus::ConnId id, const char* why) {
  auto it = by_id_.find(id);
  if (it != by_id_.end()) it->second->close(why);
}

void Server::shutdown() {
  Batch batch(*this);
  close_handle(std::move(sweep_timer_));
  close_handle(std::move(reply_timer_));
  close_handle(std::move(resume_timer_));
  close_handle(std::move(trim_timer_));
  // The listeners stay (closed) until the server goes: an event for one may
  // be in the middle of being handled.
  for (auto& ls : listeners_) {
    ls->listener.fd.reset();
    if (!ls->listener.unlink_path.empty()) ::unlink(ls->listener.unlink_path.c_str());
    ls->listener.unlink_path.clear();
  }
  close_handle(std::move(poller_watch_));
  close_handle(std::move(unread_idle_));
  // dbus-daemon says nothing of the monitors it drops when it exits.
  monitor_log_ = nullptr;
  std::vector<Peer*> all;
  for (auto& kv : peers_) all.push_back(kv.first);
  for (Peer* p : all) p->close("bus shutting down");
  close_handle(std::move(release_check_));
}

std::string Server::admit(Peer& p, uid_t uid) {
  const ServerLimits& l = config_.limits;
  if (l.max_completed_connections != 0 && completed_ >= l.max_completed_connections)
    return "The maximum number of active connections has been reached";
  const bool counted_user = uid != static_cast<uid_t>(-1);
  if (counted_user && l.max_connections_per_user != 0 && per_user_[uid] >= l.max_connections_per_user)
    return "The maximum number of active connections for UID " + std::to_string(uid) + " has been reached";
  --incomplete_;
  p.counted_incomplete = false;
  ++completed_;
  p.counted_completed = true;
  if (counted_user) {
    ++per_user_[uid];
    p.counted_uid = uid;
    // Root runs the system's own services: it is not held to a user quota.
    if (uid != 0) p.set_user_account(user_account(uid));
  }
  return {};
}

void Server::release(Peer& p) {
  if (p.counted_incomplete) --incomplete_;
  if (p.counted_completed) --completed_;
  if (p.counted_uid != static_cast<uid_t>(-1)) {
    auto it = per_user_.find(p.counted_uid);
    if (it != per_user_.end() && --it->second == 0) {
      per_user_.erase(it);
      p.set_user_account(nullptr);
      // Messages of the user's may still hold its account; a user who comes
      // back before they are gone gets the same one.
      auto a = user_accounts_.find(p.counted_uid);
      if (a != user_accounts_.end() && a->second.expired()) user_accounts_.erase(a);
    }
  }
  p.counted_incomplete = p.counted_completed = false;
  p.counted_uid = static_cast<uid_t>(-1);
}

void Server::fds_pending(Peer& p) {
  (void)p;
  arm_sweep();
}

void Server::arm_sweep() {
  if (config_.limits.auth_timeout_ms == 0 && config_.limits.pending_fd_timeout_ms == 0) return;
  if (!sweep_timer_) {
    sweep_timer_ = std::make_unique<uv_timer_t>();
    uv_timer_init(loop_, sweep_timer_.get());
    sweep_timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(sweep_timer_.get()));
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(sweep_timer_.get()))) return;
  // One sweep a second is precise enough for limits measured in seconds.
  uv_timer_start(sweep_timer_.get(), [](uv_timer_t* t) { static_cast<Server*>(t->data)->sweep(); }, 1000, 1000);
}

void Server::sweep() {
  Batch batch(*this);
  const ServerLimits& l = config_.limits;
  const uint64_t now = uv_now(loop_);
  std::vector<std::pair<Peer*, const char*>> late;
  bool waiting = false;
  for (auto& kv : peers_) {
    Peer* p = kv.first;
    if (p->counted_incomplete) {
      waiting = true;
      if (l.auth_timeout_ms != 0 && now - p->accepted_at_ms >= l.auth_timeout_ms) {
        late.emplace_back(p, "did not complete authentication and Hello within auth_timeout");
        continue;
      }
    }
    if (p->fds_pending_since_ms != 0) {
      waiting = true;
      if (l.pending_fd_timeout_ms != 0 && now - p->fds_pending_since_ms >= l.pending_fd_timeout_ms)
        late.emplace_back(p, "file descriptors waited longer than pending_fd_timeout for their message");
    }
  }
  for (auto& [p, why] : late) p->close(why);
  if (!waiting && sweep_timer_) uv_timer_stop(sweep_timer_.get());
}

uint64_t Server::reply_deadline() const {
  if (config_.limits.reply_timeout_ms == 0) return 0;
  return uv_hrtime() + config_.limits.reply_timeout_ms * 1000000ull;
}

void Server::arm_reply_timer() {
  uint64_t due = bus_.next_deadline();
  if (due == 0 || due == reply_timer_due_) return;
  if (!reply_timer_) {
    reply_timer_ = std::make_unique<uv_timer_t>();
    uv_timer_init(loop_, reply_timer_.get());
    reply_timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(reply_timer_.get()));
  }
  reply_timer_due_ = due;
  uint64_t now = uv_hrtime();
  uint64_t delay_ms = due > now ? (due - now + 999999) / 1000000 : 0;
  uv_timer_start(reply_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<Server*>(t->data);
    Batch batch(*self);
    self->reply_timer_due_ = 0;
    self->bus_.expire_replies(uv_hrtime());
    self->arm_reply_timer();
  }, delay_ms, 0);
}

void Server::queue_ready(kdbus::ConnId id, void* owner) {
  // Activators are owned by the server itself; everything else by a peer.
  if (owner == this) {
    activations_due_.push_back(id);
    return;
  }
  mark_dirty(static_cast<Peer*>(owner));
}

// Inside an engine command: the receiver is disconnected once it is over.
void Server::queue_overflow(kdbus::ConnId id, void* owner) {
  if (owner == this) return;  // activators take only unicast
  overflowed_.push_back(id);
}

int Server::add_activator(const std::string& name, kdbus::ConnId& out) {
  if (activators_.count(name)) return EEXIST;
  kdbus::HelloParams hp;
  hp.flags = kdbus::kHelloActivator | kdbus::kHelloAcceptFd;
  hp.metadata = bus_.creator();
  hp.description = "activator " + name;
  hp.activator_name = name;
  hp.owner = this;
  Batch batch(*this);
  if (int rc = bus_.hello(std::move(hp), out)) return rc;
  activators_.emplace(name, out);
  activator_names_.emplace(out, name);
  return 0;
}

int Server::remove_activator(const std::string& name) {
  auto it = activators_.find(name);
  if (it == activators_.end()) return ESRCH;
  Batch batch(*this);
  kdbus::ConnId id = it->second;
  activators_.erase(it);
  activator_names_.erase(id);
  return bus_.disconnect(id);
}

int Server::fail_activation(const std::string& name, std::string_view error, std::string_view text, size_t& answered) {
  answered = 0;
  auto it = activators_.find(name);
  if (it == activators_.end()) return ESRCH;
  const kdbus::ConnId act = it->second;
  Batch batch(*this);
  bus_.show_unobserved(act);  // the messages before their answers
  kdbus::Delivery d;
  while (bus_.recv(act, 0, 0, d) == 0) {
    const kdbus::Message& m = *d.msg;
    if (!(d.roles & kdbus::kRoleAddressed) || m.src_id == kdbus::kIdBus) continue;
    wire::Writer w(wire::MsgType::Error, 1, wire::kNoReplyExpected);
    w.error_name(error).reply_serial(static_cast<uint32_t>(m.cookie)).sender(kBusName);
    w.destination(kdbus::unique_name(m.src_id));
    w.add_string(text);
    // As dbus-daemon, whatever the message was (signals too). A call is
    // answered through the activator, so the caller's reply wait is settled.
    const bool call = m.flags & kdbus::kMsgExpectReply;
    if (send_from_bus(w.finish(), nullptr, call ? act : kdbus::kIdBus) == 0) ++answered;
  }
  return 0;
}

void Server::mark_dirty(Peer* p) {
  if (p->dirty || p->closed()) return;
  p->dirty = true;
  dirty_.push_back(p);
}

void Server::peer_closed(Peer* p) {
  release(*p);
  if (p->monitor() && monitor_log_ != nullptr) monitor_log_->monitor_closed(p->name());
  if (p->unread) {
    unread_.erase(std::find(unread_.begin(), unread_.end(), p));
    p->unread = false;
  }
  if (p->id() != 0) by_id_.erase(p->id());
  auto it = peers_.find(p);
  if (it == peers_.end()) return;
  dying_.push_back(std::move(it->second));
  release_later();
  peers_.erase(it);
}

void Server::flush() {
  ++batch_depth_;  // output written now may close peers and queue more
  while (!dirty_.empty() || !activations_due_.empty() || !overflowed_.empty()) {
    std::vector<kdbus::ConnId> full;
    full.swap(overflowed_);
    for (kdbus::ConnId id : full) disconnect(id, "its queue is full (max_outgoing_bytes): a broadcast could not be queued");
    std::vector<Peer*> batch;
    batch.swap(dirty_);
    for (Peer* p : batch) {
      p->dirty = false;
      if (!p->closed()) p->pull_and_write();
    }
    std::vector<kdbus::ConnId> due;
    due.swap(activations_due_);
    for (kdbus::ConnId id : due) {
      auto it = activator_names_.find(id);
      kdbus::Delivery first;
      // A name taken within the same batch has already drawn its calls away.
      if (it == activator_names_.end() || activation_ == nullptr || bus_.recv(id, kdbus::kRecvPeek, 0, first) != 0) {
        bus_.show_unobserved(id);
        continue;
      }
      const std::string name = it->second;  // the handler may remove the activator
      activation_->activation_needed(name, first);
      bus_.show_unobserved(id);
    }
  }
  --batch_depth_;
  if (config_.limits.reply_timeout_ms != 0) arm_reply_timer();
  const size_t charged = kdbus::Account::total_bytes();
  charged_peak_ = std::max(charged_peak_, charged);
  if (charged_peak_ - charged >= kTrimAfterBytes) {
    charged_peak_ = charged;
    trim_later();
  }
}

}  // namespace bridge
