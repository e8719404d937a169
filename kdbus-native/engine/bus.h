#pragma once
// The embedded userspace kdbus: one bus, its connections, the name registry,
// receive queues, match entries and pending replies. The command set mirrors
// kdbus (HELLO, SEND, RECV, FREE, NAME_ACQUIRE, NAME_RELEASE, LIST, CONN_INFO,
// BUS_CREATOR_INFO, UPDATE, MATCH_ADD, MATCH_REMOVE, BYEBYE) and returns 0 or
// a positive errno as kdbus does, so a kernel backend can stand behind it.
// Single-threaded: the caller serialises all calls.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "match.h"
#include "message.h"
#include "metadata.h"
#include "policy.h"

namespace snap {
class Writer;
class Reader;
}  // namespace snap

namespace kdbus {

class SnapshotHooks;

enum HelloFlags : uint64_t {
  kHelloAcceptFd = 1ull << 0,
  kHelloActivator = 1ull << 1,  // holds one name for activation; messages to it queue here
  kHelloPolicyHolder = 1ull << 2,
  kHelloMonitor = 1ull << 3,    // receives a copy of every message; invisible; cannot send
};

// D-Bus RequestName flags are translated by the caller into these (kdbus values).
enum NameFlags : uint64_t {
  kNameReplaceExisting = 1ull << 0,
  kNameAllowReplacement = 1ull << 1,
  kNameQueue = 1ull << 2,
  kNameInQueue = 1ull << 3,   // return flag: the caller waits in the queue
  kNameActivator = 1ull << 4,
  kNamePrimary = 1ull << 5,
  kNameAcquired = 1ull << 6,
};

enum RecvFlags : uint64_t {
  kRecvPeek = 1ull << 0,
  kRecvDrop = 1ull << 1,
  kRecvUsePriority = 1ull << 2,
};

// What a receiver asks the bus to attach to what it receives, with kdbus's
// KDBUS_ATTACH_* values (the delivery side writes them; see peer.cc).
enum AttachFlags : uint64_t {
  kAttachTimestamp = 1ull << 0,
  kAttachCreds = 1ull << 1,
  kAttachPids = 1ull << 2,
  kAttachAuxgroups = 1ull << 3,
  kAttachNames = 1ull << 4,
  kAttachTidComm = 1ull << 5,
  kAttachPidComm = 1ull << 6,
  kAttachExe = 1ull << 7,
  kAttachCmdline = 1ull << 8,
  kAttachCgroup = 1ull << 9,
  kAttachCaps = 1ull << 10,
  kAttachSeclabel = 1ull << 11,
  kAttachAudit = 1ull << 12,
  kAttachConnDescription = 1ull << 13,
};

enum ListFlags : uint64_t {
  kListUnique = 1ull << 0,
  kListNames = 1ull << 1,
  kListActivators = 1ull << 2,
  kListQueued = 1ull << 3,
};

// Told when a connection's receive queue goes from empty to non-empty (the
// kdbus fd becoming readable). It is called from inside the Bus command that
// queued the message (send, hello, name_acquire, disconnect...), so it must
// not call back into the Bus synchronously: note the id and drain later.
class QueueListener {
 public:
  virtual ~QueueListener() = default;
  virtual void queue_ready(ConnId id, void* owner) = 0;
  // A broadcast could not be queued for a receiver whose queue is full: the
  // receiver has fallen too far behind to be kept (same rules as above).
  virtual void queue_overflow(ConnId id, void* owner) = 0;
};

struct HelloParams {
  uint64_t flags = 0;  // HelloFlags
  Metadata metadata;
  std::string description;
  std::string activator_name;  // with kHelloActivator
  void* owner = nullptr;       // handed back in QueueListener::queue_ready
  // Leave IdAdd to a later announce(): D-Bus announces a connection after
  // answering its Hello, not when it connects.
  bool defer_announce = false;
};

struct NameOwnerInfo {
  std::string name;
  ConnId id = 0;
  uint64_t flags = 0;  // NameFlags as stored (+ kNameInQueue for waiters)
};

struct ConnInfo {
  ConnId id = 0;
  uint64_t flags = 0;  // HelloFlags
  std::string description;
  const Metadata* metadata = nullptr;  // valid until the connection goes
  std::vector<std::string> names;      // primary-owned well-known names
};

// Bounds the bus enforces; 0 means unlimited.
struct BusLimits {
  size_t max_pending_replies = 128;  // per caller (EMLINK)
  size_t max_queued_messages = 0;    // per receiver (ENOBUFS for unicast; copies are dropped)
  size_t max_queued_bytes = 0;       // payload bytes per receiver, likewise
  size_t max_queued_fds = 0;         // unix fds waiting per receiver, likewise
  size_t max_match_rules = 0;        // per connection (EMFILE)
  size_t max_names = 0;              // names per connection, its unique name included (E2BIG)
  // The same summed over the ordinary connections of one uid (root exempt),
  // failing with the same errors.
  size_t max_pending_replies_per_user = 0;
  size_t max_match_rules_per_user = 0;
  size_t max_names_per_user = 0;     // well-known names owned or queued for
};

// Why the last EACCES from send() / check_send_to_bus() was returned, for
// dbus-daemon's rejection text.
struct PolicyDenial {
  bool receive = false;  // the receiver's rules refused it, not the sender's
  int matched_rules = 0;
  bool requested_reply = false;
  ConnId recipient = kIdBus;  // kIdBus: the bus itself, or a service not started yet
};

struct BusStats {
  uint64_t connections = 0, names = 0, match_rules = 0, messages_sent = 0;
};

class Bus {
 public:
  explicit Bus(QueueListener* listener);
  ~Bus();
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  // HELLO: a new connection with a never-reused id. Emits IdAdd to matchers.
  int hello(HelloParams params, ConnId& out_id);

  // IdAdd for a connection made with defer_announce (once; EALREADY after).
  int announce(ConnId id);

  // BYEBYE, for a D-Bus client that stays connected to answer what it has
  // already received: EBUSY while messages are queued for it, EALREADY
  // when done before, EPERM for anything but an ordinary peer. Otherwise,
  // in one step, its names are released (an activatable name goes back to
  // its activator, so the next call starts a new instance) and from then on
  // it is sent only replies to its own calls and what the bus answers it;
  // messages to its unique name fail with ENXIO and it gets no broadcasts.
  // It can still send (its replies), and disconnect() ends it.
  int byebye(ConnId id);

  // The connection's socket went away (close): drop its queue, release its
  // names (hand-over to the next in queue), ReplyDead to everyone waiting on
  // it, drop replies it was owed, IdRemove to matchers. ENXIO if unknown.
  int disconnect(ConnId id);

  // SEND from connection `sender` (kIdBus: the bus itself). Sets src_id and
  // seqnum. Unicast: by dst_id, or by dst_name (ESRCH no owner; ENXIO unknown
  // id; EADDRNOTAVAIL activator with NO_AUTO_START). Broadcast (kDstBroadcast,
  // signals only): to every connection with a matching rule, sender included
  // (D-Bus semantics, unlike kernel kdbus). A message with cookie_reply != 0
  // and no EXPECT_REPLY is a reply: one the destination waits for from the
  // sender clears the wait; any other is unrequested, delivered only if the
  // policy allows unrequested replies (EPERM without a policy, EACCES when
  // the policy refuses). EXPECT_REPLY registers a wait (EMLINK over the per-connection limit).
  // Unicast is delivered regardless of match rules; eavesdroppers and
  // monitors get copies. ECOMM when fds go to a connection without
  // kHelloAcceptFd. An activator may only send replies, to the calls that
  // queued at it (how a failed activation is answered).
  int send(ConnId sender, std::shared_ptr<Message> msg);

  // A message the bus consumes itself (a call to the driver): it gets its
  // place in the global order and monitors see it; nobody else receives it.
  int observe(ConnId sender, std::shared_ptr<Message> msg);
  bool has_monitors() const;
  // A message the policy kept from its recipient where nobody gets told
  // (the bus's own signals): monitors see it, then the refusal.
  int observe_denied(ConnId sender, std::shared_ptr<Message> msg);
  // Messages that woke an activator reach monitors and eavesdroppers only
  // through this, called once the activation they caused has been asked
  // for (dbus-daemon shows the request first). Ones sent while some are
  // held wait behind them.
  int show_unobserved(ConnId activator);

  // BecomeMonitor: releases the connection's names (NameLost to it,
  // hand-over to waiters), fails calls waiting on it, announces its unique
  // name as gone (IdRemove, with the old-owner role to itself), then turns it
  // into a monitor that sees what `filter` selects (everything if empty).
  int become_monitor(ConnId id, std::vector<MatchRule> filter);

  // RECV: the head of the queue (FIFO; with kRecvUsePriority the lowest
  // priority value <= `priority` first). EAGAIN when empty. With kRecvPeek
  // the entry stays queued.
  int recv(ConnId id, uint64_t flags, int64_t priority, Delivery& out);

  // NAME_ACQUIRE with D-Bus semantics: a re-request by the owner or a waiter
  // updates its stored flags (EALREADY for the primary owner; 0 with
  // kNameInQueue in return_flags for a waiter). EEXIST when taken and not
  // queued (a waiter asking not to queue also leaves the queue). 0 with
  // kNameAcquired when the caller became primary owner. EINVAL for a
  // malformed name; EPERM for unique names, org.freedesktop.DBus, and for
  // monitors, activators and policy holders. The notifications (NameLost to
  // the old owner, NameOwnerChanged to matchers, NameAcquired to the new
  // owner, in that order) are queued before return.
  int name_acquire(ConnId id, std::string_view name, uint64_t flags, uint64_t& return_flags);

  // NAME_RELEASE: ESRCH no such name, EADDRINUSE owned by another (and the
  // caller not in its queue). A waiter leaves the queue silently.
  int name_release(ConnId id, std::string_view name);

  // The primary owner of a name, or ESRCH. Unique names resolve too.
  int name_owner(std::string_view name, ConnId& out) const;

  // LIST: unique ids and/or well-known names (primary owners; with
  // kListQueued the waiters too, in queue order after the owner).
  int list(uint64_t flags, std::vector<NameOwnerInfo>& out) const;
  // The same entries without copying them: `name` is empty for a unique id
  // and otherwise a view into the registry, valid during the call.
  void visit_names(uint64_t flags, const std::function<void(std::string_view name, ConnId id, uint64_t flags)>& fn) const;

  // Owner first, then the waiters in queue order. ESRCH if no owner.
  int queued_owners(std::string_view name, std::vector<ConnId>& out) const;

  // CONN_INFO by id, or by name when id == 0 (ESRCH / ENXIO).
  int conn_info(ConnId id, std::string_view name, ConnInfo& out) const;

  // BUS_CREATOR_INFO: the process that made the bus.
  const Metadata& creator() const;

  // UPDATE: change a connection's description (and later attach flags/policy).
  int update(ConnId id, std::string_view description);
  // UPDATE of the attach flags (AttachFlags) of what `id` receives. Messages
  // get their timestamp on send only while someone asked for kAttachTimestamp.
  int set_attach_flags(ConnId id, uint64_t flags);

  // MATCH_ADD/MATCH_REMOVE: entries are removed by cookie, as in kdbus.
  // match_find gives the cookie of the most recently added entry equal to
  // `rule` (RemoveMatch by rule text, as dbus-daemon picks). EBADSLT when
  // none. match_add: EMFILE over BusLimits::max_match_rules.
  int match_add(ConnId id, uint64_t cookie, MatchRule rule);
  int match_remove(ConnId id, uint64_t cookie);
  int match_find(ConnId id, const MatchRule& rule, uint64_t& cookie) const;
  int match_rules(ConnId id, std::vector<const MatchRule*>& out) const;

  BusStats stats() const;

  // Security policy (policy.h). Until one is installed everything is
  // allowed. Installing one recomputes every connection's rule list, so a
  // reload takes effect at once for everyone. NAME_ACQUIRE answers EACCES
  // when the policy forbids owning the name; SEND answers EACCES when the
  // sender may not send or the addressee may not receive a unicast message,
  // and leaves out broadcast and eavesdropping receivers that may not have it
  // (monitors get a Denied notification for each broadcast receiver left
  // out). A call that waited at an activator is checked again against the
  // owner that takes the name; if refused there its sender gets Denied.
  void set_policy(std::shared_ptr<const PolicyConfig> policy);
  // May a client with these credentials connect at all?
  bool can_connect(const Metadata& md) const;
  // The sender's send rules for a message addressed to the bus itself.
  int check_send_to_bus(ConnId sender, const PolicyMessage& m);
  const PolicyDenial& last_denial() const;
  // dbus-daemon's "Rejected send message, ..." text for the last denial of
  // a message from `sender`.
  std::string denial_text(ConnId sender, const PolicyMessage& m) const;

  void set_limits(const BusLimits& limits);
  const BusLimits& limits() const;

  // ReplyTimeout notifications (unicast to the caller, cookie_reply = the
  // call's cookie, notify.old_id = the callee) for every wait whose deadline
  // is <= now_ns (CLOCK_MONOTONIC); returns how many were queued.
  int expire_replies(uint64_t now_ns);
  // The earliest reply deadline, 0 when no wait has one.
  uint64_t next_deadline() const;

  // Handover (docs/handover.md): save() writes the "ENGN" section: every
  // connection with its queue, rules, names, reply waits and counters; fds
  // by index (the writer's fd list), left open. load() reads that
  // section's body into a bus without connections, taking duplicates of
  // the fds it names; the policy is not part of it (set_policy after).
  // Connections with queued messages are reported to the listener as
  // ready. Throws snap::FormatError when the section cannot be read; the
  // bus is then to be dropped.
  void save(snap::Writer& w, SnapshotHooks* hooks) const;
  void load(snap::Reader& r, SnapshotHooks* hooks);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace kdbus
