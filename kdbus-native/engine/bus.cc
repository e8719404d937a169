// The bus: connections, routing, notifications and the global sequence
// number. Each command validates everything before it changes anything, so
// an error leaves the bus as it was.
#include "bus.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "connection.h"
#include "match_eval.h"
#include "match_index.h"
#include "names.h"
#include "reply.h"
#include "snapshot.h"

namespace kdbus {
namespace {

constexpr std::string_view kDriverPath = "/org/freedesktop/DBus";
constexpr std::string_view kDriverInterface = "org.freedesktop.DBus";
constexpr std::string_view kNameOwnerChanged = "NameOwnerChanged";

bool carries_fds(const Message& m) { return m.fds && !m.fds->fds.empty(); }

// A NameOwnerChanged-shaped notification. The view points into the message's
// own strings, which is why it is built in place on the heap and never moved.
std::shared_ptr<Message> owner_change(NotifyKind kind, std::string name, ConnId old_id, ConnId new_id) {
  auto m = std::make_shared<Message>();
  m->flags = kMsgSignal;
  m->dst_id = kDstBroadcast;
  m->src_id = kIdBus;
  Notification& n = m->notify;
  n.kind = kind;
  n.old_id = old_id;
  n.new_id = new_id;
  n.name = std::move(name);
  n.old_owner = old_id ? unique_name(old_id) : std::string();
  n.new_owner = new_id ? unique_name(new_id) : std::string();
  MatchView& v = m->view;
  v.type = 4;
  v.path = kDriverPath;
  v.interface = kDriverInterface;
  v.member = kNameOwnerChanged;
  v.args = {{0, 's', n.name}, {1, 's', n.old_owner}, {2, 's', n.new_owner}};
  return m;
}

Metadata own_metadata() {
  Metadata md;
  md.has_creds = true;
  md.pid = getpid();
  md.uid = geteuid();
  md.gid = getegid();
  int n = getgroups(0, nullptr);
  if (n >= 0) {
    std::vector<gid_t> groups(static_cast<size_t>(n));
    n = getgroups(n, groups.data());
    if (n >= 0) {
      groups.resize(static_cast<size_t>(n));
      groups.push_back(md.gid);
      std::sort(groups.begin(), groups.end());
      groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
      md.groups = std::move(groups);
      md.has_groups = true;
    }
  }
  return md;
}

}  // namespace

struct Bus::State final : OwnershipOracle, NameQueueOracle, NameCounter {
  QueueListener* listener = nullptr;
  Metadata creator;
  BusLimits limits;
  uint64_t seq = 0;
  ConnId next_id = 1;
  ConnId next_hidden_id = kDstBroadcast - 1;
  // Every peer's match rules (a monitor's filter is its own). Declared before
  // the connections, which take their entries out of it when they go.
  MatchIndex index;
  std::map<ConnId, std::unique_ptr<Connection>> conns;  // id order = delivery order
  // Monitors get what is not addressed to them whatever the rules say.
  std::map<ConnId, Connection*> monitor_conns;
  // Marks the connections already taken for the message at hand.
  uint64_t visit_epoch = 0;

  void track_monitor(Connection& c) {
    if (c.is_monitor()) {
      monitor_conns[c.id()] = &c;
    } else {
      monitor_conns.erase(c.id());
    }
  }
  std::set<ConnId> announced;
  NameRegistry names;
  ReplyTracker replies;
  size_t eavesdrop_rules = 0;
  size_t monitors = 0;
  size_t match_rules = 0;
  uint64_t messages_sent = 0;
  std::shared_ptr<const PolicyConfig> policy;
  PolicyDenial denial;
  // Per uid, while it has ordinary connections. Nodes stay put, so the
  // connections and reply waits may point at them.
  std::unordered_map<uid_t, UserUsage> users;

  void names_changed(ConnId id, long delta) override {
    Connection* c = find(id);
    if (c != nullptr && c->user != nullptr) c->user->names += static_cast<size_t>(delta);
  }

  // Root runs the system's own services and is not held to user limits.
  void attach_user(Connection& c) {
    const Metadata& md = c.metadata();
    if (!c.is_ordinary() || !md.has_creds || md.uid == 0) return;
    c.user = &users[md.uid];
    ++c.user->connections;
  }
  // Once the connection has let go of its names, rules and waits.
  void detach_user(Connection& c) {
    if (c.user == nullptr) return;
    c.user->match_rules -= c.matches().size();
    UserUsage* u = c.user;
    c.user = nullptr;
    if (--u->connections == 0) users.erase(c.metadata().uid);
  }

  bool in_queue(ConnId id, std::string_view name) const override { return names.has_joined(id, name); }

  bool in_queue_below(ConnId id, std::string_view prefix) const override {
    const auto& all = names.entries();
    for (auto it = all.lower_bound(prefix); it != all.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (!name_has_prefix(it->first, prefix)) continue;
      for (const NameOwner& o : it->second.owners) {
        if (o.id == id) return true;
      }
    }
    return false;
  }

  int deny(bool receive, const Verdict& v, bool requested_reply, ConnId recipient) {
    denial = PolicyDenial{receive, v.matched_rules, requested_reply, recipient};
    return EACCES;
  }

  // dbus-daemon's per-recipient check: the sender's send rules towards this
  // receiver, then the receiver's receive rules. An activator stands for a
  // service not started yet: destination rules see the name it was called
  // by, and nobody's receive rules apply yet.
  int check_delivery(ConnId sender, const PolicyMessage& pm, const Connection& dst, bool requested_reply,
                     bool eavesdropping) {
    const bool activation = dst.is_activator();
    const ConnId receiver = activation ? kIdBus : dst.id();
    if (sender != kIdBus) {
      const Connection* src = find(sender);
      if (src != nullptr && !src->is_activator()) {
        Verdict v = src->policy().can_send(pm, requested_reply, receiver, *this);
        if (!v.allowed) return deny(false, v, requested_reply, receiver);
      }
    }
    if (activation) return 0;
    Verdict v = dst.policy().can_receive(pm, requested_reply, eavesdropping, sender, *this);
    return v.allowed ? 0 : deny(true, v, requested_reply, receiver);
  }

  bool is_primary_owner(ConnId id, std::string_view name) const override {
    if (!name.empty() && name[0] == ':') {
      ConnId named = 0;
      return parse_unique_name(name, named) && named == id;
    }
    return names.has_primary(id, name);
  }

  Connection* find(ConnId id) const {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }

  QueueLimits queue_limits() const {
    return QueueLimits{limits.max_queued_messages, limits.max_queued_bytes, limits.max_queued_fds};
  }

  void enqueue(Connection& c, const std::shared_ptr<const Message>& m, uint32_t roles) {
    // Unicast to it was vetted in send(); copies and broadcasts it no longer gets.
    if (c.closing() && !(roles & (kRoleAddressed | kRoleOldOwner))) return;
    if (c.queue().push(Delivery{m, roles}) && listener != nullptr) listener->queue_ready(c.id(), c.owner());
  }

  // Copies (as opposed to what a receiver is addressed) obey the receiver's
  // fd capability and queue bounds by being left out, never by failing the send.
  bool can_take_copy(const Connection& c, const Message& m) const {
    if (carries_fds(m) && !c.accepts_fds()) return false;
    return c.queue().fits(m, queue_limits());
  }

  // `probe` describes `m` as sent by ctx.sender; the index only picks which
  // rules to evaluate.
  bool any_rule_matches(const Connection& c, const Message& m, const MatchContext& ctx, const MatchProbe& probe,
                        bool eavesdrop_only) const {
    return c.match_index().any_of(probe, [&](const MatchEntry& e) {
      if (eavesdrop_only && !e.rule.eavesdrop) return false;
      return rule_matches(e.rule, m, ctx);
    });
  }

  // The peers with a rule that accepts `m` (with eavesdrop_only, a rule with
  // eavesdrop='true'), in id order, marked with the returned visit_epoch. The
  // bus-wide index hands out only candidate rules, so the cost follows the
  // rules that may match, not the number of connections with rules.
  std::vector<Connection*> matching_peers(const Message& m, const MatchContext& ctx, const MatchProbe& probe,
                                          bool eavesdrop_only) {
    std::vector<Connection*> out;
    const uint64_t mark = ++visit_epoch;
    index.any_of(probe, [&](const MatchEntry& e) {
      Connection* c = e.conn;
      if (c->visit_mark == mark || !c->is_ordinary()) return false;
      if (eavesdrop_only && !e.rule.eavesdrop) return false;
      if (!rule_matches(e.rule, m, ctx)) return false;
      c->visit_mark = mark;
      out.push_back(c);
      return false;
    });
    sort_by_id(out);
    return out;
  }

  static void sort_by_id(std::vector<Connection*>& v) {
    std::sort(v.begin(), v.end(), [](const Connection* a, const Connection* b) { return a->id() < b->id(); });
  }

  // f(connection, is_peer) for every monitor and every connection of `peers`
  // (sorted by id, no monitors among them), in id order, the order in which
  // the bus has always delivered.
  template <typename F>
  void for_monitors_and(const std::vector<Connection*>& peers, F&& f) {
    auto mon = monitor_conns.begin();
    auto peer = peers.begin();
    while (mon != monitor_conns.end() || peer != peers.end()) {
      if (peer == peers.end() || (mon != monitor_conns.end() && mon->first < (*peer)->id())) {
        f(*(mon++)->second, false);
      } else {
        f(**(peer++), true);
      }
    }
  }

  // Monitors see everything, or what one of their rules selects when they
  // gave some (BecomeMonitor's filter list).
  bool monitor_wants(const Connection& c, const Message& m, const MatchProbe& probe, ConnId recipient) const {
    if (c.matches().empty()) return true;
    MatchContext ctx{this, probe.sender(), recipient, true};
    return any_rule_matches(c, m, ctx, probe, false);
  }

  std::shared_ptr<const Message> stamp(const std::shared_ptr<Message>& m) {
    m->seqnum = ++seq;
    if (timestamp_wanted != 0) {
      struct timespec mono {}, real {};
      clock_gettime(CLOCK_MONOTONIC, &mono);
      clock_gettime(CLOCK_REALTIME, &real);
      m->monotonic_ns = static_cast<uint64_t>(mono.tv_sec) * 1000000000ull + static_cast<uint64_t>(mono.tv_nsec);
      m->realtime_ns = static_cast<uint64_t>(real.tv_sec) * 1000000000ull + static_cast<uint64_t>(real.tv_nsec);
    }
    return m;
  }
  // Connections with kAttachTimestamp.
  size_t timestamp_wanted = 0;

  // Tells monitors that the policy kept a message from one recipient, the
  // way dbus-daemon shows them the error it would have answered with.
  // `addressee` is who that error would go to (kIdBus: the bus itself).
  // With `tell`, the addressee gets that error too.
  void capture_denial(uint64_t cookie, ConnId addressee, bool tell = false) {
    Connection* told = tell ? find(addressee) : nullptr;
    if (monitors == 0 && told == nullptr) return;
    auto m = std::make_shared<Message>();
    m->src_id = kIdBus;
    m->dst_id = addressee == kIdBus ? kDstName : addressee;
    m->cookie_reply = cookie;
    m->notify.kind = NotifyKind::Denied;
    m->notify.new_id = addressee;
    if (addressee != kIdBus) m->notify.new_owner = unique_name(addressee);
    m->view.type = 3;
    std::shared_ptr<const Message> frozen = stamp(m);
    if (told != nullptr) enqueue(*told, frozen, kRoleAddressed);
    const MatchProbe probe(frozen->view, kIdBus);
    for (auto& [id, conn] : monitor_conns) {
      if (monitor_wants(*conn, *frozen, probe, addressee)) enqueue(*conn, frozen, kRoleEavesdrop);
    }
  }

  // The NameAcquired a new owner would get is the bus's message to it, so
  // its receive rules apply (dbus-daemon does not exempt its own signals).
  bool refuses_name_acquired(const Connection& c) const {
    if (!policy) return false;
    const std::string dest = unique_name(c.id());
    PolicyMessage pm;
    pm.type = 4;
    pm.path = kDriverPath;
    pm.interface = kDriverInterface;
    pm.member = "NameAcquired";
    pm.destination = dest;
    return !c.policy().can_receive(pm, false, false, kIdBus, *this).allowed;
  }

  // A bus-produced signal: matched by rules; `old_id`/`new_id` additionally
  // get the name-owner roles.
  void emit_broadcast(const std::shared_ptr<Message>& mut, ConnId old_owner, ConnId new_owner) {
    const NotifyKind kind = mut->notify.kind;
    if (new_owner != 0 && (kind == NotifyKind::NameAdd || kind == NotifyKind::NameChange)) {
      const Connection* c = find(new_owner);
      mut->notify.acquired_denied = c != nullptr && refuses_name_acquired(*c);
    }
    std::shared_ptr<const Message> m = stamp(mut);
    MatchContext ctx{this, kIdBus, 0, false};
    const MatchProbe probe(m->view, kIdBus);
    std::vector<Connection*> peers = matching_peers(*m, ctx, probe, false);
    // The owners hear of their name even without rules. Decided here, not
    // from the marks during delivery, which anything the delivery sets off
    // could renew.
    const Connection* unmatched[2] = {nullptr, nullptr};
    for (ConnId id : {old_owner, new_owner}) {
      Connection* c = id == 0 ? nullptr : find(id);
      if (c == nullptr || !c->is_ordinary() || c->visit_mark == visit_epoch) continue;
      c->visit_mark = visit_epoch;  // once, should both owners be the same
      unmatched[id == old_owner ? 0 : 1] = c;
      peers.push_back(c);
    }
    sort_by_id(peers);
    for_monitors_and(peers, [&](Connection& c, bool is_peer) {
      uint32_t roles = 0;
      if (!is_peer) {
        if (monitor_wants(c, *m, probe, 0)) roles = kRoleEavesdrop;
      } else {
        if (c.id() == old_owner) roles |= kRoleOldOwner;
        if (&c != unmatched[0] && &c != unmatched[1] &&
            (!policy || c.policy().can_receive(policy_view(*m), false, false, kIdBus, *this).allowed))
          roles |= kRoleMatched;
        if (c.id() == new_owner && !m->notify.acquired_denied) roles |= kRoleNewOwner;
      }
      if (roles != 0) enqueue(c, m, roles);
    });
  }

  void emit_id_change(NotifyKind kind, ConnId id) {
    std::string name = unique_name(id);
    ConnId old_id = kind == NotifyKind::IdRemove ? id : 0;
    ConnId new_id = kind == NotifyKind::IdAdd ? id : 0;
    emit_broadcast(owner_change(kind, std::move(name), old_id, new_id), 0, 0);
  }

  void emit_transfer(const NameTransfer& t) {
    NotifyKind kind = t.old_id == 0 ? NotifyKind::NameAdd : t.new_id == 0 ? NotifyKind::NameRemove : NotifyKind::NameChange;
    emit_broadcast(owner_change(kind, t.name, t.old_id, t.new_id), t.old_id, t.new_id);
  }

  // The caller learns that its call will never be answered.
  void emit_reply_failure(NotifyKind kind, const PendingReply& r) {
    Connection* caller = find(r.caller);
    if (caller == nullptr) return;
    auto m = std::make_shared<Message>();
    m->dst_id = r.caller;
    m->src_id = kIdBus;
    m->cookie_reply = r.cookie;
    m->notify.kind = kind;
    m->notify.old_id = r.callee;
    m->notify.new_id = r.caller;
    m->notify.old_owner = unique_name(r.callee);
    m->notify.new_owner = unique_name(r.caller);
    m->view.type = 3;
    std::shared_ptr<const Message> frozen = stamp(m);
    enqueue(*caller, frozen, kRoleAddressed);
    if (monitors == 0) return;
    const MatchProbe probe(frozen->view, kIdBus);
    for (auto& [id, conn] : monitor_conns) {
      if (monitor_wants(*conn, *frozen, probe, r.caller)) enqueue(*conn, frozen, kRoleEavesdrop);
    }
  }

  // A real owner arrived for a name an activator stood in for: what queued
  // up for the name moves over, and so do the reply waits of those calls.
  void hand_over_from_activator(const std::string& name, ConnId new_owner) {
    ConnId act_id = names.activator(name);
    Connection* act = find(act_id);
    Connection* owner = find(new_owner);
    if (act == nullptr || owner == nullptr || act_id == new_owner) return;
    show_unobserved(*act);
    auto moved = act->queue().extract_if([&](const Delivery& d) {
      return (d.roles & kRoleAddressed) && d.msg->dst_id == kDstName && d.msg->dst_name == name;
    });
    for (Delivery& d : moved) {
      const Message& m = *d.msg;
      // Only now is the recipient known, so the policy is asked again, as
      // dbus-daemon does when it delivers what waited for activation.
      if (policy && m.src_id != kIdBus && check_delivery(m.src_id, policy_view(m), *owner, false, false) != 0) {
        if (m.flags & kMsgExpectReply) replies.take(m.src_id, act_id, m.cookie);
        capture_denial(m.cookie, m.src_id, true);
        continue;
      }
      if (m.flags & kMsgExpectReply) replies.move_callee(m.src_id, m.cookie, act_id, new_owner);
      enqueue(*owner, d.msg, d.roles);
    }
  }

  void emit_transfers(const std::vector<NameTransfer>& transfers) {
    for (const NameTransfer& t : transfers) {
      emit_transfer(t);
      if (t.old_id == 0 && t.new_id != 0) hand_over_from_activator(t.name, t.new_id);
    }
  }

  int resolve(const Message& m, Connection*& out) const {
    if (m.dst_id != kDstName) {
      out = find(m.dst_id);
      return out != nullptr && out->is_ordinary() ? 0 : ENXIO;
    }
    if (m.dst_name.empty()) return EINVAL;
    if (m.dst_name[0] == ':') {
      ConnId id = 0;
      out = parse_unique_name(m.dst_name, id) ? find(id) : nullptr;
      return out != nullptr && out->is_ordinary() ? 0 : ESRCH;
    }
    if (ConnId owner = names.primary(m.dst_name)) {
      out = find(owner);
      return 0;
    }
    if (ConnId act = names.activator(m.dst_name)) {
      if (m.flags & kMsgNoAutoStart) return EADDRNOTAVAIL;
      out = find(act);
      return out != nullptr ? 0 : ESRCH;
    }
    return ESRCH;
  }

  void deliver_broadcast(const std::shared_ptr<const Message>& m) {
    MatchContext ctx{this, m->src_id, 0, false};
    const MatchProbe probe(m->view, m->src_id);
    const PolicyMessage pm = policy_view(*m);
    size_t refused = 0;
    const std::vector<Connection*> peers = matching_peers(*m, ctx, probe, false);
    for_monitors_and(peers, [&](Connection& c, bool is_peer) {
      uint32_t roles = 0;
      if (!is_peer) {
        if (monitor_wants(c, *m, probe, 0)) roles = kRoleEavesdrop;
      } else {
        roles = kRoleMatched;
        if (policy && check_delivery(m->src_id, pm, c, false, false) != 0) {
          roles = 0;
          ++refused;
        }
      }
      if (roles == 0) return;
      if (can_take_copy(c, *m)) {
        enqueue(c, m, roles);
      } else if ((!carries_fds(*m) || c.accepts_fds()) && listener != nullptr) {
        listener->queue_overflow(c.id(), c.owner());
      }
    });
    // After the signal itself, as monitors of dbus-daemon see them; the
    // sender is not told.
    for (size_t i = 0; i < refused; ++i) capture_denial(m->cookie, m->src_id);
  }

  void deliver_unicast(const std::shared_ptr<const Message>& m, Connection& dst) {
    // What wakes an activator is shown to observers only after the
    // activation request it causes; later ones queue behind it.
    const bool defer = dst.is_activator() && m->src_id != kIdBus &&
                       (dst.queue().empty() || !dst.unobserved().empty());
    enqueue(dst, m, kRoleAddressed);
    if (eavesdrop_rules == 0 && monitors == 0) return;
    if (defer) {
      dst.unobserved().push_back(m);
      return;
    }
    copy_to_observers(m, dst.id());
  }

  void show_unobserved(Connection& act) {
    std::vector<std::shared_ptr<const Message>> held;
    held.swap(act.unobserved());
    for (const auto& m : held) copy_to_observers(m, act.id());
  }

  // Eavesdroppers' and monitors' copies of a unicast message to `dst_id`.
  void copy_to_observers(const std::shared_ptr<const Message>& m, ConnId dst_id) {
    MatchContext ctx{this, m->src_id, dst_id, false};
    const MatchProbe probe(m->view, m->src_id);
    std::vector<Connection*> peers;
    if (eavesdrop_rules != 0) peers = matching_peers(*m, ctx, probe, true);
    for_monitors_and(peers, [&](Connection& c, bool is_peer) {
      if (c.id() == dst_id) return;
      const bool wants = is_peer ? !policy || check_delivery(m->src_id, policy_view(*m), c, false, true) == 0
                                 : monitor_wants(c, *m, probe, dst_id);
      if (wants && can_take_copy(c, *m)) enqueue(c, m, kRoleEavesdrop);
    });
  }

  void forget_rules(const Connection& c) {
    eavesdrop_rules -= c.eavesdrop_rules();
    match_rules -= c.matches().size();
  }
};

Bus::Bus(QueueListener* listener) : s_(std::make_unique<State>()) {
  s_->listener = listener;
  s_->creator = own_metadata();
  s_->names.set_counter(s_.get());
}

Bus::~Bus() = default;

int Bus::hello(HelloParams params, ConnId& out_id) {
  const uint64_t known = kHelloAcceptFd | kHelloActivator | kHelloPolicyHolder | kHelloMonitor;
  if (params.flags & ~known) return EINVAL;
  const uint64_t roles = params.flags & (kHelloActivator | kHelloPolicyHolder | kHelloMonitor);
  if (roles & (roles - 1)) return EINVAL;  // at most one special role
  const bool activator = params.flags & kHelloActivator;
  if (activator) {
    if (int err = NameRegistry::check_name(params.activator_name)) return err;
    if (s_->names.activator(params.activator_name) != 0) return EEXIST;
  } else if (!params.activator_name.empty()) {
    return EINVAL;
  }
  // Ids of connections nobody can see (activators, policy holders) come from
  // the top of the range, so unique names stay dense in connection order as
  // D-Bus clients expect (":1.0", ":1.1", ...).
  const bool hidden = params.flags & (kHelloActivator | kHelloPolicyHolder);
  const ConnId id = hidden ? s_->next_hidden_id-- : s_->next_id++;
  std::string act_name = params.activator_name;
  const bool announce_now = !params.defer_announce;
  Metadata& md = params.metadata;
  if (md.has_creds && md.pid > 0 && md.command.empty()) md.command = capture_command(md.pid);
  auto conn = std::make_unique<Connection>(id, std::move(params), s_->index);
  conn->policy() = make_client_policy(s_->policy, conn->metadata());
  const bool ordinary = conn->is_ordinary();
  if (conn->is_monitor()) ++s_->monitors;
  Connection& added = *conn;
  s_->attach_user(added);
  s_->conns.emplace(id, std::move(conn));
  s_->track_monitor(added);
  if (activator) s_->names.add_activator(id, act_name);
  out_id = id;
  if (ordinary && announce_now) {
    s_->announced.insert(id);
    s_->emit_id_change(NotifyKind::IdAdd, id);
  }
  return 0;
}

int Bus::announce(ConnId id) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (!c->is_ordinary()) return EPERM;
  if (!s_->announced.insert(id).second) return EALREADY;
  s_->emit_id_change(NotifyKind::IdAdd, id);
  return 0;
}

int Bus::byebye(ConnId id) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (!c->is_ordinary()) return EPERM;
  if (c->closing()) return EALREADY;
  if (!c->queue().empty()) return EBUSY;
  // Marked first: the notifications of the release reach it only as the
  // name's old owner.
  c->set_closing();
  std::vector<NameTransfer> transfers;
  s_->names.release_all(id, transfers);
  s_->emit_transfers(transfers);
  return 0;
}

int Bus::set_attach_flags(ConnId id, uint64_t flags) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (c->attach_flags() & kAttachTimestamp) --s_->timestamp_wanted;
  c->set_attach_flags(flags);
  if (flags & kAttachTimestamp) ++s_->timestamp_wanted;
  return 0;
}

int Bus::disconnect(ConnId id) {
  auto it = s_->conns.find(id);
  if (it == s_->conns.end()) return ENXIO;
  if (it->second->attach_flags() & kAttachTimestamp) --s_->timestamp_wanted;
  // Out of the table first: a departing connection receives nothing more.
  std::unique_ptr<Connection> conn = std::move(it->second);
  s_->conns.erase(it);
  s_->monitor_conns.erase(id);
  if (conn->is_monitor()) --s_->monitors;
  s_->forget_rules(*conn);
  s_->replies.drop_caller(id);

  std::vector<NameTransfer> transfers;
  // Out of the table, so its names are uncounted here.
  if (conn->user != nullptr) conn->user->names -= s_->names.joined_count(id);
  s_->names.release_all(id, transfers);
  s_->detach_user(*conn);
  // Its rules leave the bus's index: it is sent nothing more.
  conn->clear_matches();
  s_->emit_transfers(transfers);
  for (const PendingReply& r : s_->replies.drop_callee(id)) s_->emit_reply_failure(NotifyKind::ReplyDead, r);
  if (conn->is_ordinary() && s_->announced.erase(id)) s_->emit_id_change(NotifyKind::IdRemove, id);
  return 0;
}

int Bus::send(ConnId sender, std::shared_ptr<Message> msg) {
  if (!msg) return EINVAL;
  Connection* src = nullptr;
  if (sender != kIdBus) {
    src = s_->find(sender);
    if (src == nullptr) return ENXIO;
    // An activator speaks only to answer what queued at it (a failed start).
    const bool reply_only = msg->cookie_reply != 0 && !(msg->flags & kMsgExpectReply);
    if (!src->is_ordinary() && !(src->is_activator() && reply_only)) return EPERM;
  }
  if (msg->dst_id == kDstBroadcast) {
    if (!(msg->flags & kMsgSignal) || (msg->flags & kMsgExpectReply)) return ENOTUNIQ;
    msg->src_id = sender;
    s_->deliver_broadcast(s_->stamp(msg));
    ++s_->messages_sent;
    return 0;
  }

  Connection* dst = nullptr;
  if (int err = s_->resolve(*msg, dst)) return err;
  if (carries_fds(*msg) && !dst->accepts_fds()) return ECOMM;
  const bool is_reply = msg->cookie_reply != 0 && !(msg->flags & kMsgExpectReply);
  const bool checked = sender != kIdBus;
  if (dst->closing() && !(is_reply && (!checked || s_->replies.has(dst->id(), sender, msg->cookie_reply)))) {
    return ENXIO;
  }
  // The bus's own replies count as requested. A reply that answers no
  // pending call is an unrequested one: as in dbus-daemon, the policy
  // decides whether it is delivered (its *_requested_reply rules); without
  // a policy it is refused, as in kdbus.
  const bool requested = is_reply && (!checked || s_->replies.has(dst->id(), sender, msg->cookie_reply));
  if (is_reply && !requested && !s_->policy) return EPERM;
  if (s_->policy) {
    if (int err = s_->check_delivery(sender, policy_view(*msg), *dst, requested, false)) return err;
  }
  if (!dst->queue().fits(*msg, s_->queue_limits())) return ENOBUFS;
  if ((msg->flags & kMsgExpectReply) && checked) {
    UserUsage* user = src->user;
    if (int err = s_->replies.add(sender, dst->id(), msg->cookie, msg->timeout_ns, s_->limits.max_pending_replies,
                                  user != nullptr ? &user->replies : nullptr, s_->limits.max_pending_replies_per_user)) {
      return err;
    }
  }
  if (requested && checked) s_->replies.take(dst->id(), sender, msg->cookie_reply);
  msg->src_id = sender;
  s_->deliver_unicast(s_->stamp(msg), *dst);
  ++s_->messages_sent;
  return 0;
}

int Bus::observe(ConnId sender, std::shared_ptr<Message> msg) {
  if (!msg) return EINVAL;
  msg->src_id = sender;
  std::shared_ptr<const Message> m = s_->stamp(msg);
  const MatchProbe probe(m->view, sender);
  for (auto& [id, conn] : s_->monitor_conns) {
    if (s_->monitor_wants(*conn, *m, probe, 0)) s_->enqueue(*conn, m, kRoleEavesdrop);
  }
  return 0;
}

int Bus::observe_denied(ConnId sender, std::shared_ptr<Message> msg) {
  if (!msg) return EINVAL;
  const uint64_t cookie = msg->cookie;
  observe(sender, std::move(msg));
  s_->capture_denial(cookie, sender);
  return 0;
}

bool Bus::has_monitors() const { return s_->monitors != 0; }

int Bus::show_unobserved(ConnId activator) {
  Connection* c = s_->find(activator);
  if (c == nullptr) return ENXIO;
  s_->show_unobserved(*c);
  return 0;
}

int Bus::become_monitor(ConnId id, std::vector<MatchRule> filter) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  // After BYEBYE it is on its way out: it could receive no copies anyway.
  if (!c->is_ordinary() || c->closing()) return EPERM;
  s_->forget_rules(*c);
  s_->replies.drop_caller(id);
  std::vector<NameTransfer> transfers;
  s_->names.release_all(id, transfers);
  // A monitor counts against nobody.
  s_->detach_user(*c);
  c->clear_matches();
  s_->emit_transfers(transfers);
  for (const PendingReply& r : s_->replies.drop_callee(id)) s_->emit_reply_failure(NotifyKind::ReplyDead, r);
  // Still an ordinary peer here, so it hears NameLost for its unique name.
  if (s_->announced.erase(id)) s_->emit_broadcast(owner_change(NotifyKind::IdRemove, unique_name(id), id, 0), id, 0);
  c->turn_into_monitor(std::move(filter));
  // Its filter counts as its rules, as they are uncounted when it leaves.
  s_->match_rules += c->matches().size();
  s_->track_monitor(*c);
  ++s_->monitors;
  return 0;
}

int Bus::recv(ConnId id, uint64_t flags, int64_t priority, Delivery& out) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (!c->queue().take(flags & kRecvUsePriority, priority, flags & kRecvPeek, out)) return EAGAIN;
  return 0;
}

int Bus::name_acquire(ConnId id, std::string_view name, uint64_t flags, uint64_t& return_flags) {
  return_flags = 0;
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (!c->is_ordinary() || c->closing()) return EPERM;
  if (!c->policy().can_own(name)) return EACCES;
  // As dbus-daemon counts: the unique name is one of the names a connection has.
  if (s_->limits.max_names != 0 && !s_->names.has_joined(id, name) &&
      s_->names.joined_count(id) + 1 >= s_->limits.max_names) {
    return E2BIG;
  }
  if (c->user != nullptr && s_->limits.max_names_per_user != 0 && !s_->names.has_joined(id, name) &&
      c->user->names >= s_->limits.max_names_per_user) {
    return E2BIG;
  }
  std::vector<NameTransfer> transfers;
  int err = s_->names.acquire(id, name, flags, return_flags, transfers);
  s_->emit_transfers(transfers);
  return err;
}

int Bus::name_release(ConnId id, std::string_view name) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (!c->is_ordinary()) return EPERM;
  std::vector<NameTransfer> transfers;
  int err = s_->names.release(id, name, transfers);
  s_->emit_transfers(transfers);
  return err;
}

int Bus::name_owner(std::string_view name, ConnId& out) const {
  if (!name.empty() && name[0] == ':') {
    ConnId id = 0;
    const Connection* c = parse_unique_name(name, id) ? s_->find(id) : nullptr;
    if (c == nullptr || !c->is_ordinary()) return ESRCH;
    out = id;
    return 0;
  }
  ConnId owner = s_->names.primary(name);
  if (owner == 0) return ESRCH;
  out = owner;
  return 0;
}

int Bus::list(uint64_t flags, std::vector<NameOwnerInfo>& out) const {
  out.clear();
  visit_names(flags, [&out](std::string_view name, ConnId id, uint64_t f) {
    out.push_back({name.empty() ? unique_name(id) : std::string(name), id, f});
  });
  return 0;
}

void Bus::visit_names(uint64_t flags, const std::function<void(std::string_view, ConnId, uint64_t)>& fn) const {
  if (flags & kListUnique) {
    for (const auto& [id, c] : s_->conns) {
      if (c->is_ordinary()) fn(std::string_view(), id, 0);
    }
  }
  for (const auto& [name, e] : s_->names.entries()) {
    if (!e.owners.empty()) {
      if (flags & kListNames) fn(name, e.owners.front().id, e.owners.front().flags | kNamePrimary);
      if (flags & kListQueued) {
        for (size_t i = 1; i < e.owners.size(); ++i) fn(name, e.owners[i].id, e.owners[i].flags | kNameInQueue);
      }
    }
    if ((flags & kListActivators) && e.activator != 0) fn(name, e.activator, kNameActivator);
  }
}

int Bus::queued_owners(std::string_view name, std::vector<ConnId>& out) const {
  out.clear();
  auto it = s_->names.entries().find(name);
  if (it == s_->names.entries().end() || it->second.owners.empty()) return ESRCH;
  for (const NameOwner& o : it->second.owners) out.push_back(o.id);
  return 0;
}

int Bus::conn_info(ConnId id, std::string_view name, ConnInfo& out) const {
  const Connection* c = nullptr;
  if (id != 0) {
    c = s_->find(id);
    if (c == nullptr) return ENXIO;
  } else if (!name.empty() && name[0] == ':') {
    ConnId named = 0;
    c = parse_unique_name(name, named) ? s_->find(named) : nullptr;
    if (c == nullptr) return ENXIO;
  } else {
    c = s_->find(s_->names.primary(name));
    if (c == nullptr) return ESRCH;
  }
  out.id = c->id();
  out.flags = c->flags();
  out.description = c->description();
  out.metadata = &c->metadata();
  out.names = s_->names.primary_names(c->id());
  return 0;
}

const Metadata& Bus::creator() const { return s_->creator; }

int Bus::update(ConnId id, std::string_view description) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  c->set_description(std::string(description));
  return 0;
}

int Bus::match_add(ConnId id, uint64_t cookie, MatchRule rule) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  if (s_->limits.max_match_rules != 0 && c->matches().size() >= s_->limits.max_match_rules) return EMFILE;
  if (c->user != nullptr && s_->limits.max_match_rules_per_user != 0 &&
      c->user->match_rules >= s_->limits.max_match_rules_per_user) {
    return EMFILE;
  }
  if (c->user != nullptr) ++c->user->match_rules;
  if (rule.eavesdrop) ++s_->eavesdrop_rules;
  ++s_->match_rules;
  c->add_match(cookie, std::move(rule));
  return 0;
}

int Bus::match_remove(ConnId id, uint64_t cookie) {
  Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  size_t eavesdrop_before = c->eavesdrop_rules();
  size_t removed = c->remove_match(cookie);
  if (removed == 0) return EBADSLT;
  s_->match_rules -= removed;
  if (c->user != nullptr) c->user->match_rules -= removed;
  s_->eavesdrop_rules -= eavesdrop_before - c->eavesdrop_rules();
  return 0;
}

int Bus::match_find(ConnId id, const MatchRule& rule, uint64_t& cookie) const {
  const Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  const MatchEntry* e = c->find_match(rule);
  if (e == nullptr) return EBADSLT;
  cookie = e->cookie;
  return 0;
}

int Bus::match_rules(ConnId id, std::vector<const MatchRule*>& out) const {
  out.clear();
  const Connection* c = s_->find(id);
  if (c == nullptr) return ENXIO;
  for (const MatchEntry& e : c->matches()) out.push_back(&e.rule);
  return 0;
}

BusStats Bus::stats() const {
  BusStats st;
  st.connections = s_->conns.size();
  st.names = s_->names.owned_count();
  st.match_rules = s_->match_rules;
  st.messages_sent = s_->messages_sent;
  return st;
}

void Bus::set_policy(std::shared_ptr<const PolicyConfig> policy) {
  s_->policy = std::move(policy);
  for (auto& [id, conn] : s_->conns) conn->policy() = make_client_policy(s_->policy, conn->metadata());
}

bool Bus::can_connect(const Metadata& md) const {
  if (!md.has_creds) return true;
  // Without a policy, dbus-daemon's default: the bus's own user (and root).
  if (!s_->policy) return md.uid == geteuid() || md.uid == 0;
  return kdbus::can_connect(*s_->policy, md.uid, md.has_groups ? md.groups : std::vector<gid_t>{md.gid}, geteuid());
}

int Bus::check_send_to_bus(ConnId sender, const PolicyMessage& m) {
  const Connection* c = s_->find(sender);
  if (c == nullptr) return ENXIO;
  if (!s_->policy) return 0;
  Verdict v = c->policy().can_send(m, false, kIdBus, *s_);
  return v.allowed ? 0 : s_->deny(false, v, false, kIdBus);
}

const PolicyDenial& Bus::last_denial() const { return s_->denial; }

std::string Bus::denial_text(ConnId sender, const PolicyMessage& m) const {
  static constexpr const char* kTypes[] = {"invalid", "method_call", "method_return", "error", "signal"};
  auto field = [](std::string_view v) { return v.empty() ? std::string("(unset)") : std::string(v); };
  const PolicyDenial& d = s_->denial;
  const Connection* src = s_->find(sender);
  const Connection* dst = d.recipient == kIdBus ? nullptr : s_->find(d.recipient);
  std::string text = d.receive ? "Rejected receive message" : "Rejected send message";
  text += ", " + std::to_string(d.matched_rules) + " matched rules; type=\"" + kTypes[m.type < 5 ? m.type : 0] + "\"";
  text += ", sender=\"" + (src ? unique_name(sender) : std::string("(unset)")) + "\" (" +
          (src ? loginfo(src->metadata()) : std::string("(bus)")) + ")";
  text += " interface=\"" + field(m.interface) + "\" member=\"" + field(m.member) + "\" error name=\"" +
          field(m.error_name) + "\" requested_reply=\"" + (d.requested_reply ? "1" : "0") + "\"";
  text += " destination=\"" + (m.destination.empty() ? std::string("org.freedesktop.DBus") : std::string(m.destination)) +
          "\" (" + (dst ? loginfo(dst->metadata()) : std::string("bus")) + ")";
  return text;
}

void Bus::set_limits(const BusLimits& limits) { s_->limits = limits; }

const BusLimits& Bus::limits() const { return s_->limits; }

int Bus::expire_replies(uint64_t now_ns) {
  int n = 0;
  for (const PendingReply& r : s_->replies.expire(now_ns)) {
    if (s_->find(r.caller) == nullptr) continue;
    s_->emit_reply_failure(NotifyKind::ReplyTimeout, r);
    ++n;
  }
  return n;
}

uint64_t Bus::next_deadline() const { return s_->replies.next_deadline(); }

}  // namespace kdbus

namespace kdbus {

void Bus::save(snap::Writer& w, SnapshotHooks* hooks) const {
  const State& s = *s_;
  const size_t section = w.begin_section(snap::tag("ENGN"));
  w.u64(s.seq);
  w.u64(s.next_id);
  w.u64(s.next_hidden_id);
  w.u64(s.messages_sent);
  const BusLimits& l = s.limits;
  for (size_t v : {l.max_pending_replies, l.max_queued_messages, l.max_queued_bytes, l.max_queued_fds,
                   l.max_match_rules, l.max_names, l.max_pending_replies_per_user, l.max_match_rules_per_user,
                   l.max_names_per_user})
    w.u64(v);
  snapshot::save_metadata(w, s.creator);
  snapshot::MessageTable table;
  for (const auto& [id, c] : s.conns) {
    c->queue().for_each([&](const Delivery& d) { table.index(d.msg); });
    for (const auto& m : c->unobserved()) table.index(m);
  }
  table.save(w, hooks);
  w.u32(static_cast<uint32_t>(s.conns.size()));
  for (const auto& [id, c] : s.conns) {
    w.u64(id);
    w.u64(c->flags());
    w.u8(c->closing());
    w.u64(c->attach_flags());
    w.str(c->description());
    w.str(c->activator_name());
    snapshot::save_metadata(w, c->metadata());
    w.u8(s.announced.count(id) != 0);
    w.u32(static_cast<uint32_t>(c->matches().size()));
    for (const MatchEntry& e : c->matches()) {
      w.u64(e.cookie);
      snapshot::save_rule(w, e.rule);
    }
    w.u32(static_cast<uint32_t>(c->queue().size()));
    c->queue().for_each([&](const Delivery& d) {
      w.u32(table.index(d.msg));
      w.u32(d.roles);
    });
    w.u32(static_cast<uint32_t>(c->unobserved().size()));
    for (const auto& m : c->unobserved()) w.u32(table.index(m));
  }
  s.names.save(w);
  const std::vector<PendingReply> waits = s.replies.in_order();
  w.u32(static_cast<uint32_t>(waits.size()));
  for (const PendingReply& r : waits) {
    w.u64(r.caller);
    w.u64(r.callee);
    w.u64(r.cookie);
    w.u64(r.deadline_ns);
  }
  w.end_section(section);
}

void Bus::load(snap::Reader& r, SnapshotHooks* hooks) {
  State& s = *s_;
  if (!s.conns.empty()) throw snap::FormatError("snapshot: loading into a bus that has connections");
  s.seq = r.u64();
  s.next_id = r.u64();
  s.next_hidden_id = r.u64();
  s.messages_sent = r.u64();
  BusLimits& l = s.limits;
  for (size_t* v : {&l.max_pending_replies, &l.max_queued_messages, &l.max_queued_bytes, &l.max_queued_fds,
                    &l.max_match_rules, &l.max_names, &l.max_pending_replies_per_user, &l.max_match_rules_per_user,
                    &l.max_names_per_user})
    *v = r.u64();
  s.creator = snapshot::load_metadata(r);
  snapshot::MessageTable table;
  table.load(r, hooks);
  const uint32_t nconns = r.count(60);
  for (uint32_t i = 0; i < nconns; ++i) {
    HelloParams p;
    const ConnId id = r.u64();
    p.flags = r.u64();
    const bool closing = r.u8() != 0;
    const uint64_t attach = r.u64();
    p.description = r.str();
    p.activator_name = r.str();
    p.metadata = snapshot::load_metadata(r);
    const bool announced = r.u8() != 0;
    if (id == kIdBus || id == kDstBroadcast || s.conns.count(id) != 0)
      throw snap::FormatError("snapshot: bad or repeated connection id");
    p.owner = hooks != nullptr ? hooks->owner(id, p.flags) : nullptr;
    auto conn = std::make_unique<Connection>(id, std::move(p), s.index);
    Connection& c = *conn;
    if (closing) c.set_closing();
    c.set_attach_flags(attach);
    c.policy() = make_client_policy(s.policy, c.metadata());
    const uint32_t nrules = r.count(17);
    std::vector<MatchRule> filter;
    for (uint32_t k = 0; k < nrules; ++k) {
      const uint64_t cookie = r.u64();
      MatchRule rule = snapshot::load_rule(r);
      if (c.is_monitor()) {
        filter.push_back(std::move(rule));
      } else {
        c.add_match(cookie, std::move(rule));
      }
    }
    if (c.is_monitor()) c.turn_into_monitor(std::move(filter));
    const uint32_t queued = r.count(8);
    for (uint32_t k = 0; k < queued; ++k) {
      const auto& m = table.at(r.u32());
      c.queue().push(Delivery{m, r.u32()});
    }
    const uint32_t unobserved = r.count(4);
    for (uint32_t k = 0; k < unobserved; ++k) c.unobserved().push_back(table.at(r.u32()));
    if (c.is_monitor()) ++s.monitors;
    s.eavesdrop_rules += c.eavesdrop_rules();
    s.match_rules += c.matches().size();
    if (attach & kAttachTimestamp) ++s.timestamp_wanted;
    s.attach_user(c);
    if (c.user != nullptr) c.user->match_rules += c.matches().size();
    if (announced) s.announced.insert(id);
    s.conns.emplace(id, std::move(conn));
    s.track_monitor(c);
  }
  s.names.load(r);
  for (const auto& [name, e] : s.names.entries()) {
    if (e.activator != 0 && s.find(e.activator) == nullptr) throw snap::FormatError("snapshot: unknown activator");
    for (const NameOwner& o : e.owners) {
      if (s.find(o.id) == nullptr) throw snap::FormatError("snapshot: a name owner is not a connection");
    }
  }
  for (const auto& [id, c] : s.conns) {
    if (c->user != nullptr) c->user->names += s.names.joined_count(id);
  }
  const uint32_t nwaits = r.count(32);
  for (uint32_t i = 0; i < nwaits; ++i) {
    const ConnId caller = r.u64();
    const ConnId callee = r.u64();
    const uint64_t cookie = r.u64();
    const uint64_t deadline = r.u64();
    Connection* c = s.find(caller);
    if (c == nullptr) throw snap::FormatError("snapshot: a reply wait of an unknown caller");
    s.replies.add(caller, callee, cookie, deadline, 0, c->user != nullptr ? &c->user->replies : nullptr, 0);
  }
  if (s.listener != nullptr) {
    for (const auto& [id, c] : s.conns) {
      if (!c->queue().empty()) s.listener->queue_ready(id, c->owner());
    }
  }
}

}  // namespace kdbus
