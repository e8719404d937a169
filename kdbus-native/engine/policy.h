#pragma once
// dbus-daemon's security policy (the <policy> blocks of a busconfig), as the
// control plane compiled it, and its evaluation: who may connect, own a name,
// send a message to a receiver, receive it from a sender.
//
// Evaluation follows dbus-daemon 1.14: a connection's rules are the default
// block, then the blocks of each of its groups, of its user, the at_console
// blocks, and the mandatory block, concatenated when it connects (so a
// message costs one pass over the rules of its kind); the last rule that
// matches decides, and nothing matching means "deny". A user is at the
// console when systemd-logind lists a seat for it, as dbus-daemon decides.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "message.h"
#include "metadata.h"

namespace kdbus {

enum class RuleKind : uint8_t { Send, Receive, Own, OwnPrefix, User, Group };

// For send_broadcast: unset matches both.
enum class Tristate : int8_t { Any = -1, False = 0, True = 1 };

constexpr uint32_t kMaxMessageFds = 16;  // D-Bus' limit; max_fds defaults to it

struct PolicyRule {
  bool allow = false;
  RuleKind kind = RuleKind::Send;
  // Send / receive. nullopt (the config's "*" or absence) matches anything.
  uint8_t message_type = 0;  // 0: any
  std::optional<std::string> interface, member, error, path;
  // send_destination(_prefix) for send rules, receive_sender for receive
  // rules, the name of own / own_prefix rules.
  std::optional<std::string> name;
  bool name_is_prefix = false;  // send_destination_prefix
  Tristate broadcast = Tristate::Any;
  // Default as dbus-daemon: allow rules apply to requested replies only, deny
  // rules to unrequested replies only.
  bool requested_reply = false;
  bool eavesdrop = false;
  bool log = false;
  uint32_t min_fds = 0, max_fds = kMaxMessageFds;
  // User / group rules: the numeric id, or -1 for "*".
  int64_t id = -1;
};

// The policy as compiled from the configuration; rules in document order.
struct PolicyConfig {
  std::vector<PolicyRule> default_rules;
  std::vector<PolicyRule> mandatory_rules;
  std::map<uint32_t, std::vector<PolicyRule>> user_rules;   // by uid
  std::map<uint32_t, std::vector<PolicyRule>> group_rules;  // by gid
  std::vector<PolicyRule> console_rules;                    // at_console="true"
  std::vector<PolicyRule> no_console_rules;                 // at_console="false"
};

// What send and receive rules look at in a message.
struct PolicyMessage {
  uint8_t type = 0;
  std::string_view path, interface, member, error_name, destination;
  bool is_reply = false;   // has a reply serial
  bool broadcast = false;  // a signal without destination
  uint32_t n_fds = 0;
};

PolicyMessage policy_view(const Message& m);

// Which names a connection owns or waits for, at the time of the check
// (send_destination and receive_sender refer to those).
class NameQueueOracle {
 public:
  virtual bool in_queue(ConnId id, std::string_view name) const = 0;
  // Owns or waits for `prefix` or a name below it ("a.b" covers "a.b.c").
  virtual bool in_queue_below(ConnId id, std::string_view prefix) const = 0;

 protected:
  ~NameQueueOracle() = default;
};

struct Verdict {
  bool allowed = false;
  int matched_rules = 0;  // dbus-daemon reports it in its rejection text
  bool log = false;       // the deciding rule asked for logging
};

// "Is `name` equal to `prefix` or below it" in dot-separated components.
bool name_has_prefix(std::string_view name, std::string_view prefix);

// A connection's view of the policy, made when it connects and again when
// the policy is replaced. Holds what it points into. A default-constructed
// one (no policy installed) allows everything.
class ClientPolicy {
 public:
  ClientPolicy() = default;

  bool enforcing() const { return policy_ != nullptr; }
  bool can_own(std::string_view name) const;
  // `receiver` is the connection the message would go to; kIdBus when it is
  // the bus itself or not known yet (activation): destination rules then
  // compare the message's destination field.
  Verdict can_send(const PolicyMessage& m, bool requested_reply, ConnId receiver, const NameQueueOracle& names) const;
  // `sender` kIdBus: the bus itself, matched by its name.
  Verdict can_receive(const PolicyMessage& m, bool requested_reply, bool eavesdropping, ConnId sender,
                      const NameQueueOracle& names) const;

 private:
  friend ClientPolicy make_client_policy(const std::shared_ptr<const PolicyConfig>&, const Metadata&);
  std::shared_ptr<const PolicyConfig> policy_;
  std::vector<const PolicyRule*> send_, receive_, own_;
};

// The rule list for a connection with these credentials (dbus-daemon's
// bus_policy_create_client_policy, its "optimisation" included: a rule of a
// kind that names nothing in particular drops the rules of that kind before
// it, which changes how many rules are reported as matched).
ClientPolicy make_client_policy(const std::shared_ptr<const PolicyConfig>& policy, const Metadata& md);

// <allow user=...> / <allow group=...> in the default and mandatory blocks;
// without a rule only the bus's own user may connect.
bool can_connect(const PolicyConfig& policy, uid_t uid, const std::vector<gid_t>& groups, uid_t bus_uid);

// dbus-daemon's description of a connection in log and error texts:
// uid=N pid=N comm="..." (each part only when known).
std::string loginfo(const Metadata& md);

}  // namespace kdbus
