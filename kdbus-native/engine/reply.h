#pragma once
// Expected replies: which caller waits for which cookie from which callee,
// until when. A reply is only let through against a registered wait, so a
// connection cannot forge answers to calls it never received.
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "message.h"

namespace kdbus {

struct PendingReply {
  ConnId caller = 0;
  ConnId callee = 0;
  uint64_t cookie = 0;
  uint64_t deadline_ns = 0;  // 0 = never
  uint64_t order = 0;        // registration order
  size_t* user_count = nullptr;  // the caller's user's total, kept while the wait exists
};

class ReplyTracker {
 public:
  // EMLINK when the caller already waits for `limit` replies, or its user
  // (whose total is *user_count, null for none) for `user_limit` (0 = no
  // limit). *user_count must outlive the caller's waits (drop_caller).
  // Registering the same (caller, callee, cookie) again refreshes the deadline.
  int add(ConnId caller, ConnId callee, uint64_t cookie, uint64_t deadline_ns, size_t limit,
          size_t* user_count = nullptr, size_t user_limit = 0);

  bool has(ConnId caller, ConnId callee, uint64_t cookie) const;
  bool take(ConnId caller, ConnId callee, uint64_t cookie);

  // The wait now concerns another callee (a message handed from an
  // activator to the name's new owner).
  void move_callee(ConnId caller, uint64_t cookie, ConnId from, ConnId to);

  // Every wait on `callee`, removed, in registration order.
  std::vector<PendingReply> drop_callee(ConnId callee);
  // The caller is gone: nobody to tell.
  void drop_caller(ConnId caller);
  // Waits whose deadline is <= now, removed, in deadline order.
  std::vector<PendingReply> expire(uint64_t now_ns);
  // The earliest deadline, 0 when none.
  uint64_t next_deadline() const;

  size_t size() const { return waits_.size(); }
  size_t count_for(ConnId caller) const;
  // Every wait in registration order (a snapshot adds them back in it).
  std::vector<PendingReply> in_order() const;

 private:
  using Key = std::tuple<ConnId, ConnId, uint64_t>;  // caller, callee, cookie
  void erase(std::map<Key, PendingReply>::iterator it);

  std::map<Key, PendingReply> waits_;
  std::set<std::pair<uint64_t, Key>> deadlines_;
  std::unordered_map<ConnId, size_t> per_caller_;
  uint64_t order_ = 0;
};

}  // namespace kdbus
