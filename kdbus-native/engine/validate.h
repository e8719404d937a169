#pragma once
// Syntax of the D-Bus names the engine checks itself (match rule values,
// requested names). The rules are those of the D-Bus specification; the
// wire layer has its own checks for headers, this module keeps the engine
// free of any dependency on the socket protocol.
#include <string_view>

namespace kdbus {

constexpr size_t kMaxNameLength = 255;

bool valid_bus_name(std::string_view s);        // unique (":1.5") or well-known
bool valid_bus_namespace(std::string_view s);   // well-known, one element allowed
bool valid_interface_name(std::string_view s);
bool valid_member_name(std::string_view s);
bool valid_object_path(std::string_view s);

}  // namespace kdbus
