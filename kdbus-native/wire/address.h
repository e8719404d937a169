#pragma once
// D-Bus server addresses: parsing, escaping, and the listening sockets they name.
#include <string>
#include <utility>
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

// One entry of an address list: "method:key=value,key=value", values
// unescaped.
struct AddressEntry {
  std::string method;
  std::vector<std::pair<std::string, std::string>> kv;

  // The first occurrence wins, as in dbus_address_entry_get_value.
  const std::string* get(const char* key) const;
};

// Splits a semicolon-separated address list into its entries as
// dbus_parse_address does; false with dbus's message in err when malformed.
bool parse_addresses(std::string_view addresses, std::vector<AddressEntry>& entries, std::string& err);

// Listens like dbus_server_listen() in dbus-daemon 1.14: the semicolon-
// separated entries are alternatives tried in order and the first entry that
// can listen is used (one entry may yield several sockets: tcp names with
// several addresses, systemd with several fds). A malformed entry aborts the
// list; if no entry listens, the first failure is reported. A bus with several
// <listen> elements calls this once per element.
// Entries: unix:path= (a stale socket file is replaced), unix:abstract=,
// unix:tmpdir= and unix:dir= (a path socket "dbus-XXXXXXXXXX" in that
// directory; dbus 1.14.10 binds tmpdir= as a path socket too), unix:runtime=yes
// ($XDG_RUNTIME_DIR/bus), tcp:host=,bind=,port=(0 = any),family=ipv4|ipv6,
// systemd: (listening sockets from LISTEN_FDS/LISTEN_PID, variables unset
// afterwards). nonce-tcp: is refused as unsupported.
// connect_address carries ",guid=<guid>" and escapes values as dbus does.
// Returns false with a dbus-daemon-like message in err on failure (no
// listeners are left open then).
bool listen_addresses(std::string_view addresses, std::string_view guid, std::vector<Listener>& out,
                      std::string& err);

// Takes over a socket that another process of ours (the launcher) bound
// and listens on, with the address it printed for it ("unix:path=...,guid=...").
// The descriptor becomes close-on-exec and non-blocking, like ours; a path
// socket's file is removed on close, as for listeners made here.
bool adopt_listener(int fd, std::string_view connect_address, Listener& out, std::string& err);

// %-escapes bytes outside [-0-9A-Za-z_/.\*] as dbus_address_escape_value does.
std::string escape_address_value(std::string_view v);
// Undoes escape_address_value; false on a malformed escape.
bool unescape_address_value(std::string_view v, std::string& out);

}  // namespace wire
