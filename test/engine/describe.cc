#include "describe.h"

namespace enginetest {

using namespace kdbus;

namespace {

std::string who(ConnId id) { return id == kIdBus ? "bus" : unique_name(id); }

const char* type_name(uint8_t t) {
  switch (t) {
    case 1: return "call";
    case 2: return "return";
    case 3: return "error";
    case 4: return "signal";
    default: return "?";
  }
}

}  // namespace

std::string describe(const Delivery& d) {
  const Message& m = *d.msg;
  const Notification& n = m.notify;
  std::string s;
  switch (n.kind) {
    case NotifyKind::None:
      s = std::string(type_name(m.view.type)) + " " + who(m.src_id);
      if (m.cookie) s += " c=" + std::to_string(m.cookie);
      if (m.cookie_reply) s += " r=" + std::to_string(m.cookie_reply);
      if (!m.view.member.empty()) s += " " + std::string(m.view.member);
      if (m.priority) s += " p=" + std::to_string(m.priority);
      break;
    case NotifyKind::IdAdd: s = "IdAdd " + n.name; break;
    case NotifyKind::IdRemove: s = "IdRemove " + n.name; break;
    case NotifyKind::NameAdd: s = "NameAdd " + n.name + " " + n.new_owner; break;
    case NotifyKind::NameRemove: s = "NameRemove " + n.name + " " + n.old_owner; break;
    case NotifyKind::NameChange: s = "NameChange " + n.name + " " + n.old_owner + " " + n.new_owner; break;
    case NotifyKind::ReplyDead: s = "ReplyDead r=" + std::to_string(m.cookie_reply) + " " + n.old_owner; break;
    case NotifyKind::ReplyTimeout: s = "ReplyTimeout r=" + std::to_string(m.cookie_reply) + " " + n.old_owner; break;
    case NotifyKind::Denied: s = "Denied r=" + std::to_string(m.cookie_reply) + " " + n.new_owner; break;
  }
  s += " [";
  if (d.roles & kRoleAddressed) s += "A";
  if (d.roles & kRoleMatched) s += "M";
  if (d.roles & kRoleEavesdrop) s += "E";
  if (d.roles & kRoleOldOwner) s += "O";
  if (d.roles & kRoleNewOwner) s += "N";
  return s + "]";
}

}  // namespace enginetest
