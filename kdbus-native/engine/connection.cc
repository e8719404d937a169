#include "connection.h"

#include <algorithm>
#include <utility>

namespace kdbus {

Connection::Connection(ConnId id, HelloParams params)
    : id_(id),
      flags_(params.flags),
      owner_(params.owner),
      description_(std::move(params.description)),
      activator_name_(std::move(params.activator_name)),
      metadata_(std::move(params.metadata)) {}

void Connection::add_match(uint64_t cookie, MatchRule rule) {
  if (rule.eavesdrop) ++eavesdrop_rules_;
  matches_.push_back(MatchEntry{cookie, std::move(rule)});
}

size_t Connection::remove_match(uint64_t cookie) {
  size_t before = matches_.size();
  auto end = std::remove_if(matches_.begin(), matches_.end(), [&](const MatchEntry& e) {
    if (e.cookie != cookie) return false;
    if (e.rule.eavesdrop) --eavesdrop_rules_;
    return true;
  });
  matches_.erase(end, matches_.end());
  return before - matches_.size();
}

void Connection::clear_matches() {
  matches_.clear();
  eavesdrop_rules_ = 0;
}

void Connection::turn_into_monitor(std::vector<MatchRule> filter) {
  flags_ |= kHelloMonitor;
  clear_matches();
  for (MatchRule& r : filter) matches_.push_back(MatchEntry{0, std::move(r)});
}

const MatchEntry* Connection::find_match(const MatchRule& rule) const {
  // dbus-daemon's RemoveMatch takes the most recently added equal rule.
  for (auto it = matches_.rbegin(); it != matches_.rend(); ++it) {
    if (it->rule == rule) return &*it;
  }
  return nullptr;
}

}  // namespace kdbus
