#include "reply.h"

#include <algorithm>
#include <cerrno>

namespace kdbus {

int ReplyTracker::add(ConnId caller, ConnId callee, uint64_t cookie, uint64_t deadline_ns, size_t limit,
                      size_t* user_count, size_t user_limit) {
  Key key{caller, callee, cookie};
  auto it = waits_.find(key);
  if (it != waits_.end()) {
    if (it->second.deadline_ns != 0) deadlines_.erase({it->second.deadline_ns, key});
    it->second.deadline_ns = deadline_ns;
    if (deadline_ns != 0) deadlines_.insert({deadline_ns, key});
    return 0;
  }
  size_t& count = per_caller_[caller];
  const bool user_full = user_count != nullptr && user_limit != 0 && *user_count >= user_limit;
  if ((limit != 0 && count >= limit) || user_full) {
    if (count == 0) per_caller_.erase(caller);
    return EMLINK;
  }
  ++count;
  if (user_count != nullptr) ++*user_count;
  waits_.emplace(key, PendingReply{caller, callee, cookie, deadline_ns, ++order_, user_count});
  if (deadline_ns != 0) deadlines_.insert({deadline_ns, key});
  return 0;
}

bool ReplyTracker::has(ConnId caller, ConnId callee, uint64_t cookie) const {
  return waits_.count(Key{caller, callee, cookie}) != 0;
}

void ReplyTracker::erase(std::map<Key, PendingReply>::iterator it) {
  if (it->second.deadline_ns != 0) deadlines_.erase({it->second.deadline_ns, it->first});
  auto c = per_caller_.find(it->second.caller);
  if (c != per_caller_.end() && --c->second == 0) per_caller_.erase(c);
  if (it->second.user_count != nullptr) --*it->second.user_count;
  waits_.erase(it);
}

bool ReplyTracker::take(ConnId caller, ConnId callee, uint64_t cookie) {
  auto it = waits_.find(Key{caller, callee, cookie});
  if (it == waits_.end()) return false;
  erase(it);
  return true;
}

void ReplyTracker::move_callee(ConnId caller, uint64_t cookie, ConnId from, ConnId to) {
  auto it = waits_.find(Key{caller, from, cookie});
  if (it == waits_.end()) return;
  PendingReply r = it->second;
  erase(it);
  r.callee = to;
  Key key{caller, to, cookie};
  if (waits_.count(key) != 0) return;
  ++per_caller_[caller];
  if (r.user_count != nullptr) ++*r.user_count;
  waits_.emplace(key, r);
  if (r.deadline_ns != 0) deadlines_.insert({r.deadline_ns, key});
}

std::vector<PendingReply> ReplyTracker::drop_callee(ConnId callee) {
  std::vector<PendingReply> out;
  for (auto it = waits_.begin(); it != waits_.end();) {
    auto next = std::next(it);
    if (it->second.callee == callee) {
      out.push_back(it->second);
      erase(it);
    }
    it = next;
  }
  std::sort(out.begin(), out.end(), [](const PendingReply& a, const PendingReply& b) { return a.order < b.order; });
  return out;
}

void ReplyTracker::drop_caller(ConnId caller) {
  auto it = waits_.lower_bound(Key{caller, 0, 0});
  while (it != waits_.end() && std::get<0>(it->first) == caller) {
    auto next = std::next(it);
    erase(it);
    it = next;
  }
}

std::vector<PendingReply> ReplyTracker::expire(uint64_t now_ns) {
  std::vector<PendingReply> out;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_ns) {
    auto it = waits_.find(deadlines_.begin()->second);
    out.push_back(it->second);
    erase(it);
  }
  return out;
}

uint64_t ReplyTracker::next_deadline() const { return deadlines_.empty() ? 0 : deadlines_.begin()->first; }

size_t ReplyTracker::count_for(ConnId caller) const {
  auto it = per_caller_.find(caller);
  return it == per_caller_.end() ? 0 : it->second;
}

}  // namespace kdbus
