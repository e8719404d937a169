#pragma once
// One connection to the bus: identity, credentials, receive queue and match
// entries. Name ownership and reply waits live in the registries that span
// connections (names.h, reply.h).
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bus.h"
#include "match.h"
#include "match_index.h"
#include "message.h"
#include "metadata.h"
#include "policy.h"
#include "queue.h"

namespace kdbus {

// What the ordinary connections of one uid hold in the bus together.
struct UserUsage {
  size_t connections = 0;
  size_t names = 0;
  size_t match_rules = 0;
  size_t replies = 0;
};

class Connection {
 public:
  // Its rules go into `bus_index`, which must outlive it.
  Connection(ConnId id, HelloParams params, MatchIndex& bus_index);
  // The match index points into the connection's own entries.
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  ConnId id() const { return id_; }
  uint64_t flags() const { return flags_; }
  void* owner() const { return owner_; }
  const std::string& description() const { return description_; }
  void set_description(std::string d) { description_ = std::move(d); }
  const Metadata& metadata() const { return metadata_; }
  const std::string& activator_name() const { return activator_name_; }

  bool is_monitor() const { return flags_ & kHelloMonitor; }
  bool is_activator() const { return flags_ & kHelloActivator; }
  bool is_policy_holder() const { return flags_ & kHelloPolicyHolder; }
  // An ordinary peer: seen in listings and IdAdd/IdRemove, may send, own
  // names and be addressed by id.
  bool is_ordinary() const { return !(flags_ & (kHelloMonitor | kHelloActivator | kHelloPolicyHolder)); }
  bool accepts_fds() const { return flags_ & kHelloAcceptFd; }
  // After BYEBYE: it owns no names and is sent nothing new, only the
  // answers to its own calls, until its socket goes.
  bool closing() const { return closing_; }
  uint64_t attach_flags() const { return attach_flags_; }
  void set_attach_flags(uint64_t f) { attach_flags_ = f; }
  void set_closing() { closing_ = true; }

  // Its user's totals; null when it counts against no user (root, no
  // credentials, not an ordinary peer). Owned by the bus.
  UserUsage* user = nullptr;

  // Its rules from the security policy, made when it connects.
  ClientPolicy& policy() { return policy_; }
  const ClientPolicy& policy() const { return policy_; }

  ReceiveQueue& queue() { return queue_; }
  const ReceiveQueue& queue() const { return queue_; }

  void add_match(uint64_t cookie, MatchRule rule);
  size_t remove_match(uint64_t cookie);  // how many entries went
  const MatchEntry* find_match(const MatchRule& rule) const;
  const std::list<MatchEntry>& matches() const { return matches_; }
  size_t eavesdrop_rules() const { return eavesdrop_rules_; }
  // A monitor's filter, narrowed down to the rules worth evaluating
  // (match_index.h). A peer's rules are in the bus's index.
  const MatchIndex& match_index() const { return *index_; }

  // Set by the bus while it collects the recipients of one message, so that
  // a connection with several accepting rules is taken once.
  uint64_t visit_mark = 0;

  // BecomeMonitor: the connection stops being a peer; its rules become the
  // monitor's filter.
  void turn_into_monitor(std::vector<MatchRule> filter);
  void clear_matches();

  // An activator's messages that monitors have not seen yet: they are shown
  // once the activation they caused has been requested (dbus-daemon's order).
  std::vector<std::shared_ptr<const Message>>& unobserved() { return unobserved_; }
  const std::vector<std::shared_ptr<const Message>>& unobserved() const { return unobserved_; }

 private:
  void index_entry_or_drop();

  ConnId id_;
  uint64_t flags_;
  bool closing_ = false;
  uint64_t attach_flags_ = 0;
  void* owner_;
  std::string description_;
  std::string activator_name_;
  Metadata metadata_;
  ReceiveQueue queue_;
  ClientPolicy policy_;
  std::list<MatchEntry> matches_;  // in the order added; entries never move
  MatchIndex* index_;               // holds exactly the rules in matches_ of this connection
  std::unique_ptr<MatchIndex> own_index_;  // a monitor's
  size_t eavesdrop_rules_ = 0;
  std::vector<std::shared_ptr<const Message>> unobserved_;
};

}  // namespace kdbus
