#pragma once
// D-Bus server addresses: parsing, escaping, and the listening sockets they name.
#include <string>
#include <string_view>
#include <vector>

#include "../util/fd.h"

namespace wire {

struct Listener {
  util::UniqueFd fd;            // listening, non-blocking, close-on-exec
  bool is_unix = true;          // AF_UNIX (fd passing possible) vs TCP
  std::string connect_address;  // what clients use, e.g. "unix:path=/x,guid=<guid>"
  std::string unlink_path;      // socket file to remove on close (empty for abstract/tcp)
};

// Parses a semicolon-separated address list and binds a listener for each:
// unix:path=, unix:abstract=, unix:tmpdir= (abstract on Linux, like dbus-daemon),
// unix:dir= (a path socket with a random name), unix:runtime=yes
// ($XDG_RUNTIME_DIR/bus), tcp:host=,bind=,port=(0 = any),family=ipv4|ipv6,
// systemd: (listening sockets from LISTEN_FDS/LISTEN_PID).
// Printable addresses carry ",guid=<guid>" and escape values as dbus does.
// Returns false with a dbus-daemon-like message in err on any failure (no
// listeners are left open then).
bool listen_addresses(std::string_view addresses, std::string_view guid, std::vector<Listener>& out,
                      std::string& err);

// %-escapes bytes outside [-0-9A-Za-z_/.\*] as dbus_address_escape_value does.
std::string escape_address_value(std::string_view v);
// Undoes escape_address_value; false on a malformed escape.
bool unescape_address_value(std::string_view v, std::string& out);

}  // namespace wire
