// libFuzzer harness: AddMatch rule text. A rule that parses must come back
// unchanged from its canonical text (GetAllMatchRules hands that text out,
// and RemoveMatch with it must find the rule again), and must match the
// message it describes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../kdbus-native/engine/match.h"
#include "../kdbus-native/engine/match_eval.h"

namespace {

// Every connection owns every name: ownership is not what is tested here.
class OwnsAll final : public kdbus::OwnershipOracle {
 public:
  bool is_primary_owner(kdbus::ConnId, std::string_view) const override { return true; }
};

[[noreturn]] void fail(const char* what, const std::string& text) {
  std::fprintf(stderr, "match rule %s: %s\n", what, text.c_str());
  std::abort();
}

// The message a rule asks for: its fields and arguments set to the rule's
// values, sent by a client (or the bus, when the rule names the bus).
void check_matches_own_message(const kdbus::MatchRule& rule, const std::string& text) {
  kdbus::Message msg;
  kdbus::MatchView& v = msg.view;
  v.type = rule.type != 0 ? rule.type : 4;
  if (rule.path) v.path = *rule.path;
  if (rule.path_namespace) v.path = *rule.path_namespace;
  if (rule.interface) v.interface = *rule.interface;
  if (rule.member) v.member = *rule.member;
  if (rule.arg0namespace) v.args.push_back({0, 's', *rule.arg0namespace});
  for (const auto& a : rule.args) v.args.push_back({a.index, 's', a.value});

  OwnsAll owner;
  kdbus::MatchContext ctx;
  ctx.names = &owner;
  ctx.sender = rule.sender && *rule.sender == "org.freedesktop.DBus" ? kdbus::kIdBus : 7;
  if (rule.destination) {
    // Only an eavesdropper sees a message addressed to someone else.
    ctx.recipient = 9;
    if (!rule.eavesdrop) return;
  }
  if (!kdbus::rule_matches(rule, msg, ctx)) fail("does not match its own message", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  kdbus::MatchRule rule;
  std::string err;
  if (!kdbus::MatchRule::parse(text, rule, err)) {
    if (err.empty()) fail("refused without a reason", text);
    return 0;
  }
  const std::string canonical = rule.to_string();
  kdbus::MatchRule again;
  if (!kdbus::MatchRule::parse(canonical, again, err)) fail(("canonical text does not parse (" + err + ")").c_str(), text);
  if (!(again == rule)) fail("changed through its canonical text", text);
  if (again.to_string() != canonical) fail("canonical text is not stable", text);
  check_matches_own_message(rule, text);
  return 0;
}
