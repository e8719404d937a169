// Match rules: dbus-daemon's text syntax and its matching semantics.
#include "match.h"

#include <algorithm>
#include <utility>

#include "match_eval.h"
#include "validate.h"

namespace kdbus {
namespace {

constexpr std::string_view kBusName = "org.freedesktop.DBus";

bool is_white(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

const char* type_name(uint8_t t) {
  switch (t) {
    case 1: return "method_call";
    case 2: return "method_return";
    case 3: return "error";
    case 4: return "signal";
    default: return nullptr;
  }
}

uint8_t type_from_name(std::string_view s) {
  for (uint8_t t = 1; t <= 4; ++t) {
    if (s == type_name(t)) return t;
  }
  return 0;
}

// One key='value' pair. Whitespace may surround the key; the value runs to
// the next unquoted comma. Quoting is the shell's single quote: no escapes
// inside quotes, and outside quotes a backslash escapes only an apostrophe.
struct Token {
  std::string key, value;
};

bool tokenize(std::string_view text, std::vector<Token>& out, std::string& err) {
  size_t p = 0;
  const size_t n = text.size();
  while (p < n) {
    while (p < n && is_white(text[p])) ++p;
    size_t key_start = p;
    while (p < n && text[p] != '=' && !is_white(text[p])) ++p;
    size_t key_end = p;
    while (p < n && is_white(text[p])) ++p;
    if (key_start == key_end) {
      if (p >= n) break;  // trailing whitespace
      // dbus-daemon silently ignores everything from a bare '=' on; a rule
      // that says less than it was meant to is worse than an error.
      err = "Match rule has a key with no subsequent '=' character";
      return false;
    }
    if (p >= n || text[p] != '=') {
      err = "Match rule has a key with no subsequent '=' character";
      return false;
    }
    ++p;
    Token tok;
    tok.key.assign(text.substr(key_start, key_end - key_start));
    char quote = 0;
    for (; p < n; ++p) {
      char c = text[p];
      if (quote == 0) {
        if (c == '\'') {
          quote = '\'';
        } else if (c == ',') {
          ++p;
          break;
        } else if (c == '\\') {
          quote = '\\';
        } else {
          tok.value.push_back(c);
        }
      } else if (quote == '\\') {
        if (c != '\'') tok.value.push_back('\\');
        tok.value.push_back(c);
        quote = 0;
      } else if (c == '\'') {
        quote = 0;
      } else {
        tok.value.push_back(c);
      }
    }
    if (quote == '\\') {
      tok.value.push_back('\\');
    } else if (quote == '\'') {
      err = "Unbalanced quotation marks in match rule";
      return false;
    }
    out.push_back(std::move(tok));
  }
  return true;
}

bool parse_arg_key(const Token& tok, MatchRule& rule, std::string& err) {
  const std::string& key = tok.key;
  if (key.size() < 4) {
    err = "Key '" + key + "' in match rule starts with 'arg' but lacks an arg number. Should be 'arg0' or 'arg7' for example.";
    return false;
  }
  size_t i = 3;
  unsigned long index = 0;
  bool overflow = false;
  while (i < key.size() && key[i] >= '0' && key[i] <= '9') {
    index = index * 10 + static_cast<unsigned long>(key[i] - '0');
    if (index > 100000) overflow = true;
    ++i;
  }
  if (i == 3) {
    err = "Key '" + key + "' in match rule starts with 'arg' but could not parse arg number. Should be 'arg0' or 'arg7' for example.";
    return false;
  }
  bool is_path = false, is_namespace = false;
  std::string_view rest = std::string_view(key).substr(i);
  if (rest == "path") {
    is_path = true;
  } else if (key == "arg0namespace") {
    is_namespace = true;
    if (!valid_bus_namespace(tok.value)) {
      err = "arg0namespace='" + tok.value + "' is not a valid prefix of a bus name";
      return false;
    }
  } else if (!rest.empty()) {
    err = "Key '" + key + "' in match rule contains junk after argument number. Only 'arg" + std::to_string(index) +
          "path' (for example) or 'arg0namespace' are valid";
    return false;
  }
  if (overflow || index > MatchRule::kMaxArgIndex) {
    err = "Key '" + key + "' in match rule has arg number " + (overflow ? std::string("too large") : std::to_string(index)) +
          " but the maximum is " + std::to_string(MatchRule::kMaxArgIndex);
    return false;
  }
  bool taken = (index == 0 && rule.arg0namespace.has_value()) ||
               std::any_of(rule.args.begin(), rule.args.end(), [&](const MatchRule::Arg& a) { return a.index == index; });
  if (taken) {
    err = "Argument " + key + " matched more than once in match rule";
    return false;
  }
  if (is_namespace) {
    rule.arg0namespace = tok.value;
  } else {
    MatchRule::Arg a{static_cast<uint8_t>(index), is_path, Atom(tok.value)};
    auto pos = std::upper_bound(rule.args.begin(), rule.args.end(), a.index,
                                [](uint8_t idx, const MatchRule::Arg& x) { return idx < x.index; });
    rule.args.insert(pos, std::move(a));
  }
  return true;
}

bool set_once(Atom& field, const Token& tok, bool valid, const char* what, std::string& err) {
  if (field) {
    err = "Key " + tok.key + " specified twice in match rule";
    return false;
  }
  if (!valid) {
    err = std::string(what) + " '" + tok.value + "' is invalid";
    return false;
  }
  field = tok.value;
  return true;
}

void append_pair(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out.push_back(',');
  out.append(key);
  out.append("='");
  for (char c : value) {
    // An apostrophe cannot appear inside quotes: close, escape, reopen.
    if (c == '\'') {
      out.append("'\\''");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
}

bool path_arg_matches(std::string_view expected, std::string_view actual) {
  if (actual.size() < expected.size() && (actual.empty() || actual.back() != '/')) return false;
  if (expected.size() < actual.size() && (expected.empty() || expected.back() != '/')) return false;
  size_t n = std::min(actual.size(), expected.size());
  return actual.substr(0, n) == expected.substr(0, n);
}

const MatchView::Arg* find_arg(const MatchView& v, uint8_t index) {
  for (const auto& a : v.args) {
    if (a.index == index) return &a;
    if (a.index > index) break;
  }
  return nullptr;
}

}  // namespace

bool MatchRule::parse(std::string_view text, MatchRule& out, std::string& err) {
  out = MatchRule{};
  std::vector<Token> tokens;
  if (!tokenize(text, tokens, err)) return false;
  MatchRule r;
  bool have_type = false;
  for (const Token& tok : tokens) {
    const std::string& k = tok.key;
    if (k == "type") {
      if (have_type) {
        err = "Key type specified twice in match rule";
        return false;
      }
      r.type = type_from_name(tok.value);
      if (r.type == 0) {
        err = "Invalid message type (" + tok.value + ") in match rule";
        return false;
      }
      have_type = true;
    } else if (k == "sender") {
      if (!set_once(r.sender, tok, valid_bus_name(tok.value), "Sender name", err)) return false;
    } else if (k == "interface") {
      if (!set_once(r.interface, tok, valid_interface_name(tok.value), "Interface name", err)) return false;
    } else if (k == "member") {
      if (!set_once(r.member, tok, valid_member_name(tok.value), "Member name", err)) return false;
    } else if (k == "path" || k == "path_namespace") {
      if (r.path || r.path_namespace) {
        err = "path or path_namespace specified twice in match rule";
        return false;
      }
      if (!valid_object_path(tok.value)) {
        err = "Path '" + tok.value + "' is invalid";
        return false;
      }
      (k == "path" ? r.path : r.path_namespace) = tok.value;
    } else if (k == "destination") {
      if (!set_once(r.destination, tok, valid_bus_name(tok.value), "Destination name", err)) return false;
    } else if (k == "eavesdrop") {
      // May repeat: tools append eavesdrop='false' to override an earlier one.
      if (tok.value == "true") {
        r.eavesdrop = true;
      } else if (tok.value == "false") {
        r.eavesdrop = false;
      } else {
        err = "eavesdrop='" + tok.value + "' is invalid, it should be 'true' or 'false'";
        return false;
      }
    } else if (k.compare(0, 3, "arg") == 0) {
      if (!parse_arg_key(tok, r, err)) return false;
    } else {
      err = "Unknown key \"" + k + "\" in match rule";
      return false;
    }
  }
  out = std::move(r);
  return true;
}

std::string MatchRule::to_string() const {
  std::string s;
  if (type != 0) append_pair(s, "type", type_name(type));
  if (interface) append_pair(s, "interface", *interface);
  if (member) append_pair(s, "member", *member);
  if (path) append_pair(s, "path", *path);
  if (path_namespace) append_pair(s, "path_namespace", *path_namespace);
  if (sender) append_pair(s, "sender", *sender);
  if (destination) append_pair(s, "destination", *destination);
  if (eavesdrop) append_pair(s, "eavesdrop", "true");
  bool ns_written = !arg0namespace;
  for (const Arg& a : args) {
    if (!ns_written && a.index > 0) {
      append_pair(s, "arg0namespace", *arg0namespace);
      ns_written = true;
    }
    append_pair(s, "arg" + std::to_string(a.index) + (a.is_path ? "path" : ""), *a.value);
  }
  if (!ns_written) append_pair(s, "arg0namespace", *arg0namespace);
  return s;
}

bool MatchRule::operator==(const MatchRule& o) const {
  return type == o.type && sender == o.sender && interface == o.interface && member == o.member && path == o.path &&
         path_namespace == o.path_namespace && destination == o.destination && arg0namespace == o.arg0namespace &&
         args == o.args && eavesdrop == o.eavesdrop;
}

bool rule_matches(const MatchRule& rule, const Message& msg, const MatchContext& ctx) {
  const MatchView& v = msg.view;
  const bool eavesdrop = rule.eavesdrop || ctx.force_eavesdrop;
  if (rule.type != 0 && rule.type != v.type) return false;
  if (rule.interface && (v.interface.empty() || v.interface != *rule.interface)) return false;
  if (rule.member && (v.member.empty() || v.member != *rule.member)) return false;
  if (rule.sender) {
    if (ctx.sender == kIdBus) {
      if (*rule.sender != kBusName) return false;
    } else if (ctx.names == nullptr || !ctx.names->is_primary_owner(ctx.sender, *rule.sender)) {
      return false;
    }
  }
  if (rule.destination) {
    if (ctx.recipient == 0 || !eavesdrop) return false;
    bool named = msg.dst_id == kDstName && msg.dst_name == *rule.destination;
    if (!named && (ctx.names == nullptr || !ctx.names->is_primary_owner(ctx.recipient, *rule.destination))) return false;
  } else if (ctx.recipient != 0 && !eavesdrop) {
    return false;
  }
  if (rule.path && (v.path.empty() || v.path != *rule.path)) return false;
  if (rule.path_namespace) {
    const std::string& ns = *rule.path_namespace;
    if (v.path.empty()) return false;
    if (ns.size() > 1) {
      if (v.path.compare(0, ns.size(), ns) != 0) return false;
      if (v.path.size() > ns.size() && v.path[ns.size()] != '/') return false;
    }
  }
  if (rule.arg0namespace) {
    const MatchView::Arg* a = find_arg(v, 0);
    if (a == nullptr || a->type != 's') return false;
    const std::string& ns = *rule.arg0namespace;
    if (a->value.size() < ns.size() || a->value.compare(0, ns.size(), ns) != 0) return false;
    if (a->value.size() > ns.size() && a->value[ns.size()] != '.') return false;
  }
  for (const MatchRule::Arg& want : rule.args) {
    const MatchView::Arg* a = find_arg(v, want.index);
    if (a == nullptr) return false;
    if (want.is_path) {
      if (a->type != 's' && a->type != 'o') return false;
      if (!path_arg_matches(*want.value, a->value)) return false;
    } else {
      if (a->type != 's' || a->value != *want.value) return false;
    }
  }
  return true;
}

}  // namespace kdbus
