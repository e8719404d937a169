#pragma once
// D-Bus match rules, held by the engine as kdbus match entries and evaluated
// exactly (no bloom approximation).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "atom.h"

namespace kdbus {

struct MatchRule {
  uint8_t type = 0;  // 0 = any; else D-Bus message type
  bool eavesdrop = false;  // beside type: one padded word for both
  // Interned: rules share their strings with every other rule naming them.
  Atom sender, interface, member, path, path_namespace, destination, arg0namespace;
  struct Arg {
    uint8_t index;
    bool is_path;  // argNpath
    Atom value;
    bool operator==(const Arg& o) const { return index == o.index && is_path == o.is_path && value == o.value; }
  };
  std::vector<Arg> args;  // sorted by index

  // dbus-daemon's limits: longer rule text is LimitsExceeded rather than
  // MatchRuleInvalid, so the caller checks the length before parse().
  static constexpr size_t kMaxTextLength = 1024;
  static constexpr uint8_t kMaxArgIndex = 63;

  // Parses dbus-daemon's match rule syntax (quoting rules included) with its
  // validation: unknown keys, repeated keys, path with path_namespace, arg
  // index > 63, invalid names/paths -> false with a reason (MatchRuleInvalid).
  static bool parse(std::string_view text, MatchRule& out, std::string& err);

  // The rule written back in canonical form (GetAllMatchRules).
  std::string to_string() const;

  bool operator==(const MatchRule& o) const;
};

}  // namespace kdbus
