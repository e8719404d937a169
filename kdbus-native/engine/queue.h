#pragma once
// One connection's receive queue (the kdbus pool without the memory mapping):
// FIFO of deliveries, optionally read by priority, with optional bounds.
#include <cstddef>
#include <cstdint>
#include <deque>

#include "message.h"

namespace kdbus {

struct QueueLimits {
  size_t max_messages = 0;  // 0 = unlimited
  size_t max_bytes = 0;     // payload bytes; 0 = unlimited
  size_t max_fds = 0;       // unix fds travelling with the queued messages; 0 = unlimited
};

class ReceiveQueue {
 public:
  // Whether one more message `m` fits (ENOBUFS otherwise).
  bool fits(const Message& m, const QueueLimits& limits) const;

  // Appends; true when the queue was empty before (the fd turns readable).
  bool push(Delivery d);

  // The head, or with `use_priority` the oldest entry among those with the
  // lowest priority value not above `max_priority`. False when none.
  bool take(bool use_priority, int64_t max_priority, bool keep, Delivery& out);

  // Moves out every entry `pred` selects, in queue order.
  template <typename Pred>
  std::deque<Delivery> extract_if(Pred pred) {
    std::deque<Delivery> taken;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (pred(*it)) {
        bytes_ -= size_of(*it);
        fds_ -= fds_of(*it);
        taken.push_back(std::move(*it));
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    return taken;
  }

  template <typename F>
  void for_each(F f) const {
    for (const Delivery& d : entries_) f(d);
  }

  void clear();
  size_t size() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }
  bool empty() const { return entries_.empty(); }

  static size_t size_of(const Delivery& d);
  static size_t fds_of(const Delivery& d);

 private:
  std::deque<Delivery> entries_;
  size_t bytes_ = 0;
  size_t fds_ = 0;
};

}  // namespace kdbus
