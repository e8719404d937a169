#pragma once
// What travels through the engine: a message (opaque payload plus the few
// header facts routing and matching need), kernel notifications, and the
// per-receiver delivery record a receive queue holds.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../util/fd.h"
#include "account.h"

namespace kdbus {

using ConnId = uint64_t;

constexpr ConnId kIdBus = 0;                // src_id of what the bus itself sends
constexpr ConnId kDstName = 0;              // dst_id when routing by dst_name
constexpr ConnId kDstBroadcast = ~ConnId{0};

enum MsgFlags : uint64_t {
  kMsgExpectReply = 1ull << 0,
  kMsgNoAutoStart = 1ull << 1,
  kMsgSignal = 1ull << 2,
};

// The bytes of a message as receivers get them: a head the bus wrote (the
// whole message, for a small one), then for a large message its body, left
// in the buffer it was read into. A message is shared by all its receivers,
// so neither part is ever copied per receiver.
struct Payload {
  std::vector<uint8_t> head;
  std::shared_ptr<const std::vector<uint8_t>> body_buffer;  // keeps `body` alive
  const uint8_t* body = nullptr;
  size_t body_len = 0;

  size_t size() const { return head.size() + body_len; }
};

// Unix fds travelling with a message; shared across receivers, closed when
// the last reference goes.
struct FdSet {
  std::vector<util::UniqueFd> fds;
};

// The facts of a D-Bus message that match rules look at. Views point into
// the message's payload (or into Notification::name) and live as long as it.
struct MatchView {
  uint8_t type = 0;  // D-Bus message type: 1 call, 2 return, 3 error, 4 signal
  std::string_view path, interface, member, destination;
  std::string_view error_name;  // for the security policy's send_error / receive_error
  struct Arg {
    uint8_t index;
    char type;  // 's' or 'o'
    std::string_view value;
  };
  std::vector<Arg> args;  // string-like top-level args, index ascending
};

// Messages the bus produces itself (kdbus "kernel messages").
enum class NotifyKind : uint8_t {
  None = 0,
  IdAdd,         // a connection appeared: NameOwnerChanged(":1.N", "", ":1.N")
  IdRemove,      // a connection went:     NameOwnerChanged(":1.N", ":1.N", "")
  NameAdd,       // a name got its first owner
  NameRemove,    // a name lost its last owner
  NameChange,    // a name moved from old_id to new_id
  ReplyDead,     // the callee went without answering: cookie_reply is the call's cookie
  ReplyTimeout,  // the deadline passed: cookie_reply is the call's cookie
  // Only monitors get these: the policy refused a message to one recipient
  // (cookie_reply is its cookie; new_owner the sender, "" for the bus).
  Denied,
};

struct Notification {
  NotifyKind kind = NotifyKind::None;
  ConnId old_id = 0;  // 0 = none
  ConnId new_id = 0;  // 0 = none
  std::string name;   // well-known name, or the unique name for Id*
  std::string old_owner, new_owner;  // unique names ("" = none), for matching NameOwnerChanged args
  // The new owner's policy refuses the NameAcquired this change implies.
  bool acquired_denied = false;
};

struct Message {
  uint64_t flags = 0;  // MsgFlags
  int64_t priority = 0;
  ConnId dst_id = kDstName;
  std::string dst_name;  // with dst_id == kDstName
  ConnId src_id = kIdBus;  // set by the bus on send
  uint64_t cookie = 0;     // the sender's serial
  uint64_t cookie_reply = 0;
  uint64_t timeout_ns = 0;  // absolute CLOCK_MONOTONIC deadline with kMsgExpectReply; 0 = never
  uint64_t seqnum = 0;      // set by the bus on send: global order
  // When the bus took it (CLOCK_MONOTONIC, CLOCK_REALTIME), set only while
  // some receiver asked for timestamps (kAttachTimestamp); 0 otherwise.
  uint64_t monotonic_ns = 0, realtime_ns = 0;
  Payload payload;
  std::shared_ptr<FdSet> fds;
  MatchView view;
  Notification notify;  // kind != None only for what the bus produces
  // Against the sender (or, for the bus's answers, the caller) until the
  // last receiver has written the message out.
  Charge charge;
};

// Why a message sits in one receiver's queue; a notification can concern the
// receiver in several ways at once.
enum DeliveryRole : uint32_t {
  kRoleAddressed = 1u << 0,  // unicast to this receiver, or a reply to it
  kRoleMatched = 1u << 1,    // one of the receiver's match rules accepted it
  kRoleEavesdrop = 1u << 2,  // seen through an eavesdrop rule or as a monitor
  kRoleOldOwner = 1u << 3,   // name notification: the receiver lost the name (NameLost)
  kRoleNewOwner = 1u << 4,   // name notification: the receiver got the name (NameAcquired)
};

struct Delivery {
  std::shared_ptr<const Message> msg;
  uint32_t roles = 0;
};

// The D-Bus unique name of a connection id, and back. Unique names count from
// ":1.0" as dbus-daemon hands them out, while ids count from 1 as in kdbus
// (0 is the bus itself).
std::string unique_name(ConnId id);
bool parse_unique_name(std::string_view name, ConnId& id);

}  // namespace kdbus
