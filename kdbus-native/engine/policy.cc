#include "policy.h"

#include <fstream>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace kdbus {
namespace {

constexpr std::string_view kBusName = "org.freedesktop.DBus";

// A rule that says nothing about which messages or names it concerns; in a
// client's list it makes every earlier rule of its kind irrelevant to
// dbus-daemon, which drops them.
bool names_nothing(const PolicyRule& r) {
  switch (r.kind) {
    case RuleKind::Send:
    case RuleKind::Receive:
      return r.message_type == 0 && !r.path && !r.interface && !r.member && !r.error && !r.name;
    case RuleKind::Own:
      return !r.name;
    default:
      return false;
  }
}

void append(std::vector<const PolicyRule*>& send, std::vector<const PolicyRule*>& receive,
            std::vector<const PolicyRule*>& own, const std::vector<PolicyRule>& rules) {
  for (const PolicyRule& r : rules) {
    std::vector<const PolicyRule*>* list = nullptr;
    switch (r.kind) {
      case RuleKind::Send:
        list = &send;
        break;
      case RuleKind::Receive:
        list = &receive;
        break;
      case RuleKind::Own:
      case RuleKind::OwnPrefix:
        list = &own;
        break;
      default:
        continue;  // connection rules are not per client
    }
    if (names_nothing(r)) list->clear();
    list->push_back(&r);
  }
}

// Optional header fields: a rule naming a value skips messages that carry a
// different one, but not messages lacking the field (dbus-daemon's choice).
bool field_differs(const std::optional<std::string>& want, std::string_view have) {
  return want && !have.empty() && have != *want;
}

// What send and receive rules have in common.
bool message_fields_match(const PolicyRule& r, const PolicyMessage& m, bool requested_reply) {
  if (r.message_type != 0 && r.message_type != m.type) return false;
  if (m.is_reply) {
    if (!requested_reply && r.allow && r.requested_reply && !r.eavesdrop) return false;
    if (requested_reply && !r.allow && !r.requested_reply) return false;
  }
  if (field_differs(r.path, m.path)) return false;
  // A message without interface escapes allow rules naming one, but not deny rules.
  if (r.interface && (m.interface.empty() ? r.allow : m.interface != *r.interface)) return false;
  if (field_differs(r.member, m.member)) return false;
  if (field_differs(r.error, m.error_name)) return false;
  if (m.n_fds < r.min_fds || m.n_fds > r.max_fds) return false;
  return true;
}

bool send_matches(const PolicyRule& r, const PolicyMessage& m, bool requested_reply, ConnId receiver,
                  const NameQueueOracle& names) {
  if (!message_fields_match(r, m, requested_reply)) return false;
  if (r.broadcast != Tristate::Any && (r.broadcast == Tristate::True) != m.broadcast) return false;
  if (r.name) {
    if (receiver == kIdBus) {
      if (r.name_is_prefix ? (m.destination.empty() || !name_has_prefix(m.destination, *r.name))
                           : m.destination != *r.name)
        return false;
    } else if (r.name_is_prefix ? !names.in_queue_below(receiver, *r.name) : !names.in_queue(receiver, *r.name)) {
      return false;
    }
  }
  return true;
}

bool receive_matches(const PolicyRule& r, const PolicyMessage& m, bool requested_reply, bool eavesdropping,
                     ConnId sender, const NameQueueOracle& names) {
  if (r.message_type != 0 && r.message_type != m.type) return false;
  // Eavesdropping needs an allow rule that says so; a deny rule that says so
  // concerns eavesdropping only.
  if (eavesdropping && r.allow && !r.eavesdrop) return false;
  if (!eavesdropping && !r.allow && r.eavesdrop) return false;
  if (!message_fields_match(r, m, requested_reply)) return false;
  if (r.name) {
    if (sender == kIdBus) {
      if (*r.name != kBusName) return false;
    } else if (!names.in_queue(sender, *r.name)) {
      return false;
    }
  }
  return true;
}

template <typename Pred>
Verdict decide(const std::vector<const PolicyRule*>& rules, Pred matches) {
  Verdict v;
  for (const PolicyRule* r : rules) {
    if (!matches(*r)) continue;
    ++v.matched_rules;
    v.allowed = r->allow;
    v.log = r->log;
  }
  return v;
}

bool connection_rules_allow(bool current, const std::vector<PolicyRule>& rules, uid_t uid,
                            const std::vector<gid_t>& groups) {
  for (const PolicyRule& r : rules) {
    if (r.kind == RuleKind::User) {
      if (r.id != -1 && static_cast<uid_t>(r.id) != uid) continue;
    } else if (r.kind == RuleKind::Group) {
      if (r.id != -1 && std::find(groups.begin(), groups.end(), static_cast<gid_t>(r.id)) == groups.end()) continue;
    } else {
      continue;
    }
    current = r.allow;
  }
  return current;
}

}  // namespace

PolicyMessage policy_view(const Message& m) {
  PolicyMessage p;
  p.type = m.view.type;
  p.path = m.view.path;
  p.interface = m.view.interface;
  p.member = m.view.member;
  p.error_name = m.view.error_name;
  p.destination = m.view.destination;
  p.is_reply = m.cookie_reply != 0;
  p.broadcast = m.view.type == 4 && m.view.destination.empty();
  p.n_fds = m.fds ? static_cast<uint32_t>(m.fds->fds.size()) : 0;
  return p;
}

bool name_has_prefix(std::string_view name, std::string_view prefix) {
  if (name.size() < prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  return name.size() == prefix.size() || name[prefix.size()] == '.';
}

bool ClientPolicy::can_own(std::string_view name) const {
  if (!policy_) return true;
  return decide(own_, [&](const PolicyRule& r) {
           if (!r.name) return true;
           return r.kind == RuleKind::OwnPrefix ? name_has_prefix(name, *r.name) : name == *r.name;
         }).allowed;
}

Verdict ClientPolicy::can_send(const PolicyMessage& m, bool requested_reply, ConnId receiver,
                               const NameQueueOracle& names) const {
  if (!policy_) return Verdict{true, 0, false};
  return decide(send_, [&](const PolicyRule& r) { return send_matches(r, m, requested_reply, receiver, names); });
}

Verdict ClientPolicy::can_receive(const PolicyMessage& m, bool requested_reply, bool eavesdropping, ConnId sender,
                                  const NameQueueOracle& names) const {
  if (!policy_) return Verdict{true, 0, false};
  return decide(receive_, [&](const PolicyRule& r) {
    return receive_matches(r, m, requested_reply, eavesdropping, sender, names);
  });
}

// dbus-daemon asks systemd-logind (sd_uid_get_seats) whether a user has a
// seat; logind keeps that in /run/systemd/users/UID as a SEATS= line. Without
// logind nobody is at the console, as for dbus-daemon.
static bool user_at_console(uid_t uid) {
  std::ifstream f("/run/systemd/users/" + std::to_string(uid));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("SEATS=", 0) == 0) return line.size() > 6;
  }
  return false;
}

ClientPolicy make_client_policy(const std::shared_ptr<const PolicyConfig>& policy, const Metadata& md) {
  ClientPolicy c;
  if (!policy) return c;
  c.policy_ = policy;
  append(c.send_, c.receive_, c.own_, policy->default_rules);
  if (md.has_groups) {
    for (gid_t g : md.groups) {
      auto it = policy->group_rules.find(g);
      if (it != policy->group_rules.end()) append(c.send_, c.receive_, c.own_, it->second);
    }
  }
  if (md.has_creds) {
    auto it = policy->user_rules.find(md.uid);
    if (it != policy->user_rules.end()) append(c.send_, c.receive_, c.own_, it->second);
    // Looked up only when the configuration asks (it reads a file).
    if (!policy->console_rules.empty() || !policy->no_console_rules.empty())
      append(c.send_, c.receive_, c.own_, user_at_console(md.uid) ? policy->console_rules : policy->no_console_rules);
  }
  append(c.send_, c.receive_, c.own_, policy->mandatory_rules);
  return c;
}

bool can_connect(const PolicyConfig& policy, uid_t uid, const std::vector<gid_t>& groups, uid_t bus_uid) {
  bool allowed = uid == bus_uid;
  allowed = connection_rules_allow(allowed, policy.default_rules, uid, groups);
  return connection_rules_allow(allowed, policy.mandatory_rules, uid, groups);
}

std::string loginfo(const Metadata& md) {
  std::string out;
  if (md.has_creds) {
    out = "uid=" + std::to_string(md.uid);
    if (md.pid > 0) out += " pid=" + std::to_string(md.pid) + " comm=\"" + md.command + "\"";
  }
  if (md.has_seclabel && !md.seclabel.empty()) {
    if (!out.empty()) out += ' ';
    out += "label=\"" + md.seclabel + "\"";
  }
  return out;
}

}  // namespace kdbus
