#include "connection.h"

#include <algorithm>
#include <utility>

namespace kdbus {

Connection::Connection(ConnId id, HelloParams params, MatchIndex& bus_index)
    : id_(id),
      flags_(params.flags),
      owner_(params.owner),
      description_(std::move(params.description)),
      activator_name_(std::move(params.activator_name)),
      metadata_(std::move(params.metadata)),
      index_(&bus_index) {
  // A monitor's filter is its own, never a peer's rules.
  if (is_monitor()) {
    own_index_ = std::make_unique<MatchIndex>();
    index_ = own_index_.get();
  }
}

// The bus's index must not point at entries that went.
Connection::~Connection() { clear_matches(); }

void Connection::add_match(uint64_t cookie, MatchRule rule) {
  matches_.push_back(MatchEntry{cookie, this, std::move(rule)});
  index_entry_or_drop();
  if (matches_.back().rule.eavesdrop) ++eavesdrop_rules_;
}

// An entry the index does not know would never be evaluated: it goes again
// if indexing fails.
void Connection::index_entry_or_drop() {
  try {
    index_->insert(matches_.back());
  } catch (...) {
    matches_.pop_back();
    throw;
  }
}

size_t Connection::remove_match(uint64_t cookie) {
  size_t removed = 0;
  for (auto it = matches_.begin(); it != matches_.end();) {
    if (it->cookie != cookie) {
      ++it;
      continue;
    }
    if (it->rule.eavesdrop) --eavesdrop_rules_;
    index_->erase(*it);
    it = matches_.erase(it);
    ++removed;
  }
  return removed;
}

void Connection::clear_matches() {
  for (const MatchEntry& e : matches_) index_->erase(e);
  matches_.clear();
  eavesdrop_rules_ = 0;
}

void Connection::turn_into_monitor(std::vector<MatchRule> filter) {
  flags_ |= kHelloMonitor;
  clear_matches();
  own_index_ = std::make_unique<MatchIndex>();
  index_ = own_index_.get();
  for (MatchRule& r : filter) {
    matches_.push_back(MatchEntry{0, this, std::move(r)});
    index_entry_or_drop();
  }
}

const MatchEntry* Connection::find_match(const MatchRule& rule) const {
  // dbus-daemon's RemoveMatch takes the most recently added equal rule.
  for (auto it = matches_.rbegin(); it != matches_.rend(); ++it) {
    if (it->rule == rule) return &*it;
  }
  return nullptr;
}

}  // namespace kdbus
