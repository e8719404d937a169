#include "snapshot.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "names.h"
#include "reply.h"

namespace kdbus {
namespace snapshot {

void save_metadata(snap::Writer& w, const Metadata& md) {
  w.u8(md.has_creds);
  w.u32(static_cast<uint32_t>(md.pid));
  w.u32(md.uid);
  w.u32(md.gid);
  w.u8(md.has_groups);
  w.u32(static_cast<uint32_t>(md.groups.size()));
  for (gid_t g : md.groups) w.u32(g);
  w.u8(md.has_seclabel);
  w.str(md.seclabel);
  w.u32(md.pidfd && md.pidfd->valid() ? w.fd(md.pidfd->get()) : snap::kNoFd);
  w.str(md.command);
}

Metadata load_metadata(snap::Reader& r) {
  Metadata md;
  md.has_creds = r.u8() != 0;
  md.pid = static_cast<pid_t>(r.u32());
  md.uid = r.u32();
  md.gid = r.u32();
  md.has_groups = r.u8() != 0;
  const uint32_t n = r.count(4);
  md.groups.reserve(n);
  for (uint32_t i = 0; i < n; ++i) md.groups.push_back(r.u32());
  md.has_seclabel = r.u8() != 0;
  md.seclabel = r.str();
  util::UniqueFd pidfd = r.take_fd();
  if (pidfd.valid()) md.pidfd = std::make_shared<util::UniqueFd>(std::move(pidfd));
  md.command = r.str();
  return md;
}

namespace {

void save_opt(snap::Writer& w, const Atom& s) {
  w.u8(s.has_value());
  if (s) w.str(*s);
}

Atom load_atom(snap::Reader& r) {
  if (r.u8() == 0) return Atom();
  return Atom(r.str());
}

// Where a view of a message points: its own bytes or strings where it can,
// else (the bus's constant strings, say) the text itself.
enum RefKind : uint8_t { kNone = 0, kHead, kBody, kNotifyName, kOldOwner, kNewOwner, kLiteral };

bool inside(std::string_view v, const void* base, size_t len, size_t& off) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  const auto* b = static_cast<const uint8_t*>(base);
  if (b == nullptr || p < b || p + v.size() > b + len) return false;
  off = static_cast<size_t>(p - b);
  return true;
}

void save_ref(snap::Writer& w, const Message& m, std::string_view v) {
  size_t off = 0;
  auto put = [&](RefKind k) {
    w.u8(k);
    w.u64(off);
    w.u64(v.size());
  };
  const Notification& n = m.notify;
  if (v.data() == nullptr) {
    w.u8(kNone);
  } else if (inside(v, m.payload.head.data(), m.payload.head.size(), off)) {
    put(kHead);
  } else if (inside(v, m.payload.body, m.payload.body_len, off)) {
    put(kBody);
  } else if (inside(v, n.name.data(), n.name.size(), off)) {
    put(kNotifyName);
  } else if (inside(v, n.old_owner.data(), n.old_owner.size(), off)) {
    put(kOldOwner);
  } else if (inside(v, n.new_owner.data(), n.new_owner.size(), off)) {
    put(kNewOwner);
  } else {
    w.u8(kLiteral);
    w.str(v);
  }
}

// A view read back: resolved once the message's buffers are in place.
struct Ref {
  RefKind kind = kNone;
  uint64_t off = 0, len = 0;
};

Ref load_ref(snap::Reader& r, std::vector<uint8_t>& extra) {
  Ref ref;
  const uint8_t k = r.u8();
  if (k > kLiteral) throw snap::FormatError("snapshot: unknown message view kind");
  ref.kind = static_cast<RefKind>(k);
  if (ref.kind == kNone) return ref;
  if (ref.kind == kLiteral) {
    std::string_view s = r.view();
    ref.off = extra.size();
    ref.len = s.size();
    extra.insert(extra.end(), s.begin(), s.end());
    return ref;
  }
  ref.off = r.u64();
  ref.len = r.u64();
  return ref;
}

std::string_view resolve(const Ref& ref, const Message& m, size_t body_len) {
  auto within = [&](const void* base, size_t len) {
    if (ref.off > len || ref.len > len - ref.off) throw snap::FormatError("snapshot: message view out of range");
    return std::string_view(static_cast<const char*>(base) + ref.off, ref.len);
  };
  const uint8_t* extra = m.payload.body_buffer ? m.payload.body_buffer->data() + body_len : nullptr;
  const size_t extra_len = m.payload.body_buffer ? m.payload.body_buffer->size() - body_len : 0;
  switch (ref.kind) {
    case kNone: return {};
    case kHead: return within(m.payload.head.data(), m.payload.head.size());
    case kBody: return within(m.payload.body, m.payload.body_len);
    case kNotifyName: return within(m.notify.name.data(), m.notify.name.size());
    case kOldOwner: return within(m.notify.old_owner.data(), m.notify.old_owner.size());
    case kNewOwner: return within(m.notify.new_owner.data(), m.notify.new_owner.size());
    case kLiteral: return within(extra, extra_len);
  }
  return {};
}

void save_message(snap::Writer& w, const Message& m, SnapshotHooks* hooks) {
  w.u64(m.flags);
  w.i64(m.priority);
  w.u64(m.dst_id);
  w.str(m.dst_name);
  w.u64(m.src_id);
  w.u64(m.cookie);
  w.u64(m.cookie_reply);
  w.u64(m.timeout_ns);
  w.u64(m.seqnum);
  w.u64(m.monotonic_ns);
  w.u64(m.realtime_ns);
  w.bytes(m.payload.head.data(), m.payload.head.size());
  w.bytes(m.payload.body, m.payload.body_len);
  const size_t nfds = m.fds ? m.fds->fds.size() : 0;
  w.u32(static_cast<uint32_t>(nfds));
  for (size_t i = 0; i < nfds; ++i) w.u32(w.fd(m.fds->fds[i].get()));
  const Notification& n = m.notify;
  w.u8(static_cast<uint8_t>(n.kind));
  w.u64(n.old_id);
  w.u64(n.new_id);
  w.str(n.name);
  w.str(n.old_owner);
  w.str(n.new_owner);
  w.u8(n.acquired_denied);
  const MatchView& v = m.view;
  w.u8(v.type);
  for (std::string_view s : {v.path, v.interface, v.member, v.destination, v.error_name}) save_ref(w, m, s);
  w.u32(static_cast<uint32_t>(v.args.size()));
  for (const MatchView::Arg& a : v.args) {
    w.u8(a.index);
    w.u8(static_cast<uint8_t>(a.type));
    save_ref(w, m, a.value);
  }
  w.u64(hooks != nullptr && m.charge.account() != nullptr ? hooks->account_key(m.charge.account()) : 0);
  w.u64(m.charge.bytes());
  w.u64(m.charge.fds());
}

std::shared_ptr<const Message> load_message(snap::Reader& r, SnapshotHooks* hooks) {
  auto m = std::make_shared<Message>();
  m->flags = r.u64();
  m->priority = r.i64();
  m->dst_id = r.u64();
  m->dst_name = r.str();
  m->src_id = r.u64();
  m->cookie = r.u64();
  m->cookie_reply = r.u64();
  m->timeout_ns = r.u64();
  m->seqnum = r.u64();
  m->monotonic_ns = r.u64();
  m->realtime_ns = r.u64();
  std::string_view head = r.view();
  m->payload.head.assign(head.begin(), head.end());
  std::string_view body = r.view();
  // The body and the literal views share one buffer: the body first.
  std::vector<uint8_t> buffer(body.begin(), body.end());
  const uint32_t nfds = r.count(4);
  if (nfds != 0) {
    m->fds = std::make_shared<FdSet>();
    m->fds->fds.reserve(nfds);
    for (uint32_t i = 0; i < nfds; ++i) m->fds->fds.push_back(r.need_fd());
  }
  Notification& n = m->notify;
  const uint8_t kind = r.u8();
  if (kind > static_cast<uint8_t>(NotifyKind::Denied)) throw snap::FormatError("snapshot: unknown notification kind");
  n.kind = static_cast<NotifyKind>(kind);
  n.old_id = r.u64();
  n.new_id = r.u64();
  n.name = r.str();
  n.old_owner = r.str();
  n.new_owner = r.str();
  n.acquired_denied = r.u8() != 0;
  m->view.type = r.u8();
  Ref fields[5];
  for (Ref& f : fields) f = load_ref(r, buffer);
  const uint32_t nargs = r.count(3);
  std::vector<std::pair<MatchView::Arg, Ref>> args(nargs);
  for (auto& [a, ref] : args) {
    a.index = r.u8();
    a.type = static_cast<char>(r.u8());
    ref = load_ref(r, buffer);
  }
  const uint64_t key = r.u64();
  const uint64_t charged_bytes = r.u64();
  const uint64_t charged_fds = r.u64();
  if (!buffer.empty()) {
    auto shared = std::make_shared<const std::vector<uint8_t>>(std::move(buffer));
    m->payload.body = shared->data();
    m->payload.body_len = body.size();
    m->payload.body_buffer = std::move(shared);
  }
  MatchView& v = m->view;
  std::string_view* targets[] = {&v.path, &v.interface, &v.member, &v.destination, &v.error_name};
  for (size_t i = 0; i < 5; ++i) *targets[i] = resolve(fields[i], *m, body.size());
  v.args.reserve(nargs);
  for (auto& [a, ref] : args) {
    a.value = resolve(ref, *m, body.size());
    v.args.push_back(a);
  }
  if (m->payload.body_len == 0) m->payload.body = nullptr;
  if (key != 0 && hooks != nullptr) m->charge = hooks->charge(key, charged_bytes, charged_fds);
  return m;
}

}  // namespace

void save_rule(snap::Writer& w, const MatchRule& rule) {
  w.u8(rule.type);
  for (const auto* s : {&rule.sender, &rule.interface, &rule.member, &rule.path, &rule.path_namespace,
                        &rule.destination, &rule.arg0namespace})
    save_opt(w, *s);
  w.u32(static_cast<uint32_t>(rule.args.size()));
  for (const MatchRule::Arg& a : rule.args) {
    w.u8(a.index);
    w.u8(a.is_path);
    w.str(*a.value);
  }
  w.u8(rule.eavesdrop);
}

MatchRule load_rule(snap::Reader& r) {
  MatchRule rule;
  rule.type = r.u8();
  for (auto* s : {&rule.sender, &rule.interface, &rule.member, &rule.path, &rule.path_namespace, &rule.destination,
                  &rule.arg0namespace})
    *s = load_atom(r);
  const uint32_t n = r.count(10);
  rule.args.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    MatchRule::Arg a;
    a.index = r.u8();
    a.is_path = r.u8() != 0;
    a.value = Atom(r.str());
    rule.args.push_back(std::move(a));
  }
  rule.eavesdrop = r.u8() != 0;
  return rule;
}

uint32_t MessageTable::index(const std::shared_ptr<const Message>& m) {
  auto [it, added] = ids_.emplace(m.get(), static_cast<uint32_t>(list_.size()));
  if (added) list_.push_back(m);
  return it->second;
}

void MessageTable::save(snap::Writer& w, SnapshotHooks* hooks) const {
  w.u32(static_cast<uint32_t>(list_.size()));
  for (uint32_t i = 0; i < list_.size(); ++i) {
    save_message(w, *list_[i], hooks);
    if (hooks) hooks->message_saved(list_[i].get(), i);
  }
}

void MessageTable::load(snap::Reader& r, SnapshotHooks* hooks) {
  const uint32_t n = r.count(100);
  list_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    list_.push_back(load_message(r, hooks));
    if (hooks) hooks->message_loaded(i, list_.back());
  }
}

const std::shared_ptr<const Message>& MessageTable::at(uint32_t i) const {
  if (i >= list_.size()) throw snap::FormatError("snapshot: message index out of range");
  return list_[i];
}

}  // namespace snapshot

void NameRegistry::save(snap::Writer& w) const {
  w.u32(static_cast<uint32_t>(names_.size()));
  for (const auto& [name, e] : names_) {
    w.str(name);
    w.u64(e.activator);
    w.u32(static_cast<uint32_t>(e.owners.size()));
    for (const NameOwner& o : e.owners) {
      w.u64(o.id);
      w.u64(o.flags);
    }
  }
  // The order each connection joined its names decides release_all's order.
  w.u32(static_cast<uint32_t>(joined_.size()));
  for (const auto& [id, names] : joined_) {
    w.u64(id);
    w.u32(static_cast<uint32_t>(names.size()));
    for (const std::string& n : names) w.str(n);
  }
}

void NameRegistry::load(snap::Reader& r) {
  const uint32_t n = r.count(20);
  for (uint32_t i = 0; i < n; ++i) {
    std::string name = r.str();
    NameEntry e;
    e.activator = r.u64();
    const uint32_t owners = r.count(16);
    for (uint32_t j = 0; j < owners; ++j) {
      NameOwner o;
      o.id = r.u64();
      o.flags = r.u64();
      e.owners.push_back(o);
    }
    names_.emplace(std::move(name), std::move(e));
  }
  const uint32_t conns = r.count(12);
  for (uint32_t i = 0; i < conns; ++i) {
    std::vector<std::string>& v = joined_[r.u64()];
    const uint32_t k = r.count(8);
    for (uint32_t j = 0; j < k; ++j) v.push_back(r.str());
  }
}

std::vector<PendingReply> ReplyTracker::in_order() const {
  std::vector<PendingReply> all;
  all.reserve(waits_.size());
  for (const auto& [key, r] : waits_) all.push_back(r);
  std::sort(all.begin(), all.end(), [](const PendingReply& a, const PendingReply& b) { return a.order < b.order; });
  return all;
}

}  // namespace kdbus
