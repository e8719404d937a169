#pragma once
// Evaluation of a match rule against a message, with the facts only the bus
// knows (who owns which name at send time) supplied by the caller.
#include <string_view>

#include "match.h"
#include "message.h"

namespace kdbus {

class OwnershipOracle {
 public:
  // True when `id` is `name` (its unique name) or the primary owner of it.
  virtual bool is_primary_owner(ConnId id, std::string_view name) const = 0;

 protected:
  ~OwnershipOracle() = default;
};

struct MatchContext {
  const OwnershipOracle* names = nullptr;
  ConnId sender = kIdBus;  // kIdBus: the bus itself ("org.freedesktop.DBus")
  ConnId recipient = 0;    // the addressed connection; 0 for a broadcast
  // Monitors see unicast traffic as eavesdroppers do, whatever their rules say.
  bool force_eavesdrop = false;
};

// dbus-daemon's semantics: a rule without eavesdrop never accepts a unicast
// message (its addressee gets it anyway); a rule with a destination never
// accepts a broadcast.
bool rule_matches(const MatchRule& rule, const Message& msg, const MatchContext& ctx);

}  // namespace kdbus
