#include "undirected.h"

#include <string>

namespace bridge {

namespace {

constexpr std::string_view kPeer = "org.freedesktop.DBus.Peer";
constexpr std::string_view kIntrospectable = "org.freedesktop.DBus.Introspectable";
constexpr std::string_view kUnknownMethod = "org.freedesktop.DBus.Error.UnknownMethod";
constexpr std::string_view kEmptyNode =
    "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
    "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"
    "<node>\n"
    "</node>\n";

std::vector<uint8_t> error(const wire::Header& call, uint32_t serial, std::string_view text) {
  wire::Writer w(wire::MsgType::Error, serial, wire::kNoReplyExpected);
  w.error_name(kUnknownMethod).reply_serial(call.serial).add_string(text);
  return w.finish();
}

}  // namespace

std::vector<uint8_t> answer_undirected_call(const wire::Header& call, uint32_t serial, std::string_view machine_id) {
  const bool peer = call.has_interface && call.interface == kPeer;
  if (peer || (call.has_interface && call.interface == kIntrospectable && call.member == "Introspect")) {
    wire::Writer w(wire::MsgType::MethodReturn, serial, wire::kNoReplyExpected);
    w.reply_serial(call.serial);
    if (!peer) {
      w.add_string(kEmptyNode);
    } else if (call.member == "GetMachineId") {
      w.add_string(machine_id);
    } else if (call.member != "Ping") {
      // The arguments of Peer methods are not looked at, as libdbus does not.
      return error(call, serial, "Unknown method invoked on org.freedesktop.DBus.Peer interface");
    }
    return w.finish();
  }
  std::string text = "Method \"" + std::string(call.member) + "\" with signature \"" + std::string(call.signature) +
                     "\" on interface \"" + (call.has_interface ? std::string(call.interface) : std::string("(null)")) +
                     "\" doesn't exist\n";
  return error(call, serial, text);
}

}  // namespace bridge
