#pragma once
// Method calls with no destination. dbus-daemon hands them to its own end of
// the caller's connection, where libdbus answers them as it answers calls to
// any connection with no objects: Peer.Ping and Peer.GetMachineId get a
// reply, Introspect an empty node, everything else UnknownMethod. The answer
// carries neither a sender nor a destination, and monitors do not see it.
// (xdg-dbus-proxy relies on this: it turns a call to a name it hides into a
// Peer.Ping without destination and expects the answer at once.)
#include <cstdint>
#include <string_view>
#include <vector>

#include "wire/message.h"

namespace bridge {

// The whole answer to `call` (a method call without a destination), with
// serial `serial`. It is sent even when the call asked for no reply, as
// dbus-daemon sends it.
std::vector<uint8_t> answer_undirected_call(const wire::Header& call, uint32_t serial, std::string_view machine_id);

}  // namespace bridge
