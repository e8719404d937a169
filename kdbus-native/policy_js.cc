#include "policy_js.h"

#include <string>
#include <utility>
#include <vector>

namespace bridge {
namespace {

[[noreturn]] void bad(const Napi::Env& env, const std::string& what) {
  throw Napi::TypeError::New(env, "setPolicy: " + what);
}

Napi::Array array_of(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) bad(o.Env(), std::string(key) + " must be an array");
  return v.As<Napi::Array>();
}

std::optional<std::string> opt_string(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  if (!v.IsString()) bad(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

double number(const Napi::Object& o, const char* key, double def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) bad(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

kdbus::RuleKind kind_of(const Napi::Env& env, const std::string& k) {
  if (k == "send") return kdbus::RuleKind::Send;
  if (k == "receive") return kdbus::RuleKind::Receive;
  if (k == "own") return kdbus::RuleKind::Own;
  if (k == "own_prefix") return kdbus::RuleKind::OwnPrefix;
  if (k == "user") return kdbus::RuleKind::User;
  if (k == "group") return kdbus::RuleKind::Group;
  bad(env, "unknown rule kind " + k);
}

kdbus::PolicyRule rule_from_js(const Napi::Value& v) {
  if (!v.IsObject()) bad(v.Env(), "a rule must be an object");
  auto o = v.As<Napi::Object>();
  kdbus::PolicyRule r;
  r.allow = o.Get("allow").ToBoolean();
  auto kind = opt_string(o, "kind");
  if (!kind) bad(o.Env(), "a rule needs a kind");
  r.kind = kind_of(o.Env(), *kind);
  r.message_type = static_cast<uint8_t>(number(o, "type", 0));
  r.interface = opt_string(o, "interface");
  r.member = opt_string(o, "member");
  r.error = opt_string(o, "error");
  r.path = opt_string(o, "path");
  r.name = opt_string(o, "name");
  r.name_is_prefix = o.Get("namePrefix").ToBoolean();
  Napi::Value b = o.Get("broadcast");
  r.broadcast = b.IsBoolean() ? (b.As<Napi::Boolean>().Value() ? kdbus::Tristate::True : kdbus::Tristate::False)
                              : kdbus::Tristate::Any;
  r.requested_reply = o.Get("requestedReply").ToBoolean();
  r.eavesdrop = o.Get("eavesdrop").ToBoolean();
  r.log = o.Get("log").ToBoolean();
  r.min_fds = static_cast<uint32_t>(number(o, "minFds", 0));
  r.max_fds = static_cast<uint32_t>(number(o, "maxFds", kdbus::kMaxMessageFds));
  r.id = static_cast<int64_t>(number(o, "id", -1));
  return r;
}

std::vector<kdbus::PolicyRule> rules_from_js(const Napi::Object& o, const char* key) {
  Napi::Array arr = array_of(o, key);
  std::vector<kdbus::PolicyRule> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(rule_from_js(arr.Get(i)));
  return out;
}

void blocks_from_js(const Napi::Object& o, const char* key, std::map<uint32_t, std::vector<kdbus::PolicyRule>>& out) {
  Napi::Array arr = array_of(o, key);
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsObject()) bad(o.Env(), std::string(key) + " entries must be objects");
    auto block = e.As<Napi::Object>();
    auto id = static_cast<uint32_t>(number(block, "id", 0));
    std::vector<kdbus::PolicyRule> rules = rules_from_js(block, "rules");
    auto& list = out[id];
    for (auto& r : rules) list.push_back(std::move(r));
  }
}

}  // namespace

std::shared_ptr<const kdbus::PolicyConfig> policy_from_js(const Napi::Value& v) {
  if (!v.IsObject()) bad(v.Env(), "the policy must be an object");
  auto o = v.As<Napi::Object>();
  auto p = std::make_shared<kdbus::PolicyConfig>();
  p->default_rules = rules_from_js(o, "defaultRules");
  p->mandatory_rules = rules_from_js(o, "mandatoryRules");
  p->console_rules = rules_from_js(o, "consoleRules");
  p->no_console_rules = rules_from_js(o, "noConsoleRules");
  blocks_from_js(o, "userRules", p->user_rules);
  blocks_from_js(o, "groupRules", p->group_rules);
  return p;
}

}  // namespace bridge
