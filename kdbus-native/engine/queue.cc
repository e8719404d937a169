#include "queue.h"

#include <utility>

namespace kdbus {

size_t ReceiveQueue::size_of(const Delivery& d) {
  return d.msg ? d.msg->payload.size() : 0;
}

size_t ReceiveQueue::fds_of(const Delivery& d) { return d.msg && d.msg->fds ? d.msg->fds->fds.size() : 0; }

bool ReceiveQueue::fits(const Message& m, const QueueLimits& limits) const {
  const size_t bytes = m.payload.size();
  const size_t fds = m.fds ? m.fds->fds.size() : 0;
  if (limits.max_messages != 0 && entries_.size() + 1 > limits.max_messages) return false;
  if (limits.max_bytes != 0 && bytes_ + bytes > limits.max_bytes) return false;
  if (limits.max_fds != 0 && fds != 0 && fds_ + fds > limits.max_fds) return false;
  return true;
}

bool ReceiveQueue::push(Delivery d) {
  bool was_empty = entries_.empty();
  bytes_ += size_of(d);
  fds_ += fds_of(d);
  entries_.push_back(std::move(d));
  return was_empty;
}

bool ReceiveQueue::take(bool use_priority, int64_t max_priority, bool keep, Delivery& out) {
  if (entries_.empty()) return false;
  auto pick = entries_.begin();
  if (use_priority) {
    pick = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      int64_t p = it->msg->priority;
      if (p > max_priority) continue;
      // Strictly lower only: the first seen among equals is the oldest.
      if (pick == entries_.end() || p < pick->msg->priority) pick = it;
    }
    if (pick == entries_.end()) return false;
  }
  if (keep) {
    out = *pick;
    return true;
  }
  bytes_ -= size_of(*pick);
  fds_ -= fds_of(*pick);
  out = std::move(*pick);
  entries_.erase(pick);
  return true;
}

void ReceiveQueue::clear() {
  entries_.clear();
  bytes_ = 0;
  fds_ = 0;
}

}  // namespace kdbus
