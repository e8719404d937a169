#include "address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "random.h"

namespace wire {

namespace {

// libdbus refuses names longer than this even though sun_path holds 108
// bytes, so addresses that work with us also work with it.
constexpr size_t kMaxSunPath = 99;
constexpr int kTcpBacklog = 30;

bool optionally_escaped(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
         c == '/' || c == '\\' || c == '*' || c == '.';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

using Entry = AddressEntry;

bool unescape(std::string_view v, std::string& out, std::string& err) {
  out.clear();
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (optionally_escaped(c)) {
      out += static_cast<char>(c);
    } else if (c == '%') {
      if (v.size() - i < 3) {
        err = "In D-Bus address, percent character was not followed by two hex digits";
        return false;
      }
      int hi = hex_value(v[i + 1]), lo = hex_value(v[i + 2]);
      if (hi < 0 || lo < 0) {
        err = "In D-Bus address, percent character was followed by characters other than hex digits";
        return false;
      }
      out += static_cast<char>((hi << 4) | lo);
      i += 2;
    } else {
      err = std::string("In D-Bus address, character '") + static_cast<char>(c) + "' should have been escaped";
      return false;
    }
  }
  return true;
}

// How an entry failed: a malformed entry stops the whole list, a failure to
// listen lets dbus-daemon fall through to the next entry.
enum class Outcome { Ok, BadAddress, DidNotListen, NotHandled };

std::string errno_text(int e) { return std::strerror(e); }

Outcome listen_unix(const std::string& path, bool abstract, std::string_view guid, std::vector<Listener>& out,
                    std::string& err) {
  util::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    err = "Failed to open socket: " + errno_text(errno);
    return Outcome::DidNotListen;
  }
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  socklen_t len;
  if (abstract) {
    if (path.size() > kMaxSunPath) {
      err = "Abstract socket name too long";
      return Outcome::DidNotListen;
    }
    std::memcpy(addr.sun_path + 1, path.data(), path.size());
    len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + path.size());
  } else {
    // dbus-daemon replaces a leftover socket (a bus that died without
    // cleaning up) but never any other kind of file.
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());
    if (path.size() > kMaxSunPath) {
      err = "Socket name too long";
      return Outcome::DidNotListen;
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size());
  }
  if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), len) < 0) {
    err = "Failed to bind socket \"" + path + "\": " + errno_text(errno);
    return Outcome::DidNotListen;
  }
  if (::listen(fd.get(), SOMAXCONN) < 0) {
    err = "Failed to listen on socket \"" + path + "\": " + errno_text(errno);
    if (!abstract) unlink(path.c_str());
    return Outcome::DidNotListen;
  }
  // Access control is the bus policy's job, not the file mode's: open it up
  // like dbus-daemon (whose failure here is only a warning).
  if (!abstract) chmod(path.c_str(), 0777);

  Listener l;
  l.fd = std::move(fd);
  l.is_unix = true;
  l.connect_address = std::string(abstract ? "unix:abstract=" : "unix:path=") + escape_address_value(path) +
                      ",guid=" + std::string(guid);
  if (!abstract) l.unlink_path = path;
  out.push_back(std::move(l));
  return Outcome::Ok;
}

std::string random_ascii(size_t n) {
  static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(n, 'x');
  std::string raw(n, '\0');
  random_bytes(raw.data(), raw.size());
  for (size_t i = 0; i < n; ++i) s[i] = letters[static_cast<unsigned char>(raw[i]) % (sizeof letters - 1)];
  return s;
}

std::string concat_dir_and_file(const std::string& dir, const std::string& file) {
  if (!dir.empty() && dir.back() == '/') return dir + file;
  return dir + "/" + file;
}

Outcome listen_unix_entry(const Entry& e, std::string_view guid, std::vector<Listener>& out, std::string& err) {
  const std::string* path = e.get("path");
  const std::string* dir = e.get("dir");
  const std::string* tmpdir = e.get("tmpdir");
  const std::string* abstract = e.get("abstract");
  const std::string* runtime = e.get("runtime");
  int modes = (path != nullptr) + (dir != nullptr) + (tmpdir != nullptr) + (abstract != nullptr) + (runtime != nullptr);
  if (modes < 1) {
    err = "Server address of type unix was missing argument path or tmpdir or abstract or runtime or dir";
    return Outcome::BadAddress;
  }
  if (modes > 1) {
    err =
        "Could not parse server address: cannot specify two of \"path\", \"tmpdir\", \"abstract\", \"runtime\" and "
        "\"dir\" at the same time";
    return Outcome::BadAddress;
  }
  if (runtime) {
    if (*runtime != "yes") {
      err = "Could not parse server address: if given, the only value allowed for \"runtime\" is \"yes\"";
      return Outcome::BadAddress;
    }
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    if (!xdg) {
      err = "\"XDG_RUNTIME_DIR\" is not set";
      return Outcome::DidNotListen;
    }
    return listen_unix(concat_dir_and_file(xdg, "bus"), false, guid, out, err);
  }
  if (dir || tmpdir) {
    // dbus 1.14.10 as shipped binds tmpdir= as a path socket too (verified
    // against its --print-address), so both forms behave alike here.
    const std::string& d = dir ? *dir : *tmpdir;
    return listen_unix(concat_dir_and_file(d, "dbus-" + random_ascii(10)), false, guid, out, err);
  }
  if (path) return listen_unix(*path, false, guid, out, err);
  return listen_unix(*abstract, true, guid, out, err);
}

bool sockaddr_host_port(const struct sockaddr* sa, socklen_t len, std::string& host, unsigned& port) {
  char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
  if (getnameinfo(sa, len, hbuf, sizeof hbuf, pbuf, sizeof pbuf, NI_NUMERICHOST | NI_NUMERICSERV) != 0) return false;
  host = hbuf;
  port = static_cast<unsigned>(std::strtoul(pbuf, nullptr, 10));
  return true;
}

Outcome listen_tcp_entry(const Entry& e, std::string_view guid, std::vector<Listener>& out, std::string& err) {
  const std::string* host_v = e.get("host");
  const std::string* bind_v = e.get("bind");
  const std::string* port_v = e.get("port");
  const std::string* family_v = e.get("family");
  const std::string host = host_v ? *host_v : "localhost";
  std::string port = port_v ? *port_v : "0";
  std::optional<std::string> bind_host = host;
  if (bind_v) bind_host = *bind_v == "*" ? std::nullopt : std::optional<std::string>(*bind_v);

  struct addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  if (!family_v) {
    hints.ai_family = AF_UNSPEC;
  } else if (*family_v == "ipv4") {
    hints.ai_family = AF_INET;
  } else if (*family_v == "ipv6") {
    hints.ai_family = AF_INET6;
  } else {
    err = "Unknown address family " + *family_v;
    return Outcome::DidNotListen;
  }
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_PASSIVE;

  const std::string shown_host = bind_host ? *bind_host : "*";
  std::vector<Listener> fds;
  std::vector<std::string> bind_errors;
  std::string retport;
  bool have_v4 = false, have_v6 = false;

  // With port 0 the kernel picks a port on the first address; every other
  // address of the name is then bound to that same port, so the lookup is
  // redone with it (libdbus does the same, tolerating the EADDRINUSE this
  // causes for the address already bound).
  for (bool redo = true; redo;) {
    redo = false;
    struct addrinfo* ai = nullptr;
    int rc = getaddrinfo(bind_host ? bind_host->c_str() : nullptr, port.c_str(), &hints, &ai);
    if (rc != 0 || !ai) {
      err = "Failed to lookup host/port: \"" + shown_host + ":" + port + "\": " + gai_strerror(rc) + " (" +
            std::to_string(rc) + ")";
      if (ai) freeaddrinfo(ai);
      return Outcome::DidNotListen;
    }
    for (struct addrinfo* a = ai; a; a = a->ai_next) {
      util::UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) {
        err = "Failed to open socket: " + errno_text(errno);
        freeaddrinfo(ai);
        return Outcome::DidNotListen;
      }
      int on = 1;
      setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
      // Nagle would delay the small first messages of every conversation.
      setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) < 0) {
        int saved = errno;
        std::string h;
        unsigned p = 0;
        sockaddr_host_port(a->ai_addr, a->ai_addrlen, h, p);
        bind_errors.push_back("Failed to bind socket \"" + h + "\" port " + std::to_string(p) + ": " +
                              errno_text(saved));
        continue;
      }
      if (::listen(fd.get(), kTcpBacklog) < 0) {
        int saved = errno;
        std::string h;
        unsigned p = 0;
        sockaddr_host_port(a->ai_addr, a->ai_addrlen, h, p);
        err = "Failed to listen on socket \"" + h + "\" port " + std::to_string(p) + ": " + errno_text(saved);
        freeaddrinfo(ai);
        return Outcome::DidNotListen;
      }
      if (a->ai_family == AF_INET) have_v4 = true;
      if (a->ai_family == AF_INET6) have_v6 = true;
      Listener l;
      l.fd = std::move(fd);
      l.is_unix = false;
      fds.push_back(std::move(l));
      if (retport.empty()) {
        if (port == "0") {
          struct sockaddr_storage ss;
          socklen_t sl = sizeof ss;
          std::string h;
          unsigned p = 0;
          if (getsockname(fds.back().fd.get(), reinterpret_cast<struct sockaddr*>(&ss), &sl) != 0 ||
              !sockaddr_host_port(reinterpret_cast<struct sockaddr*>(&ss), sl, h, p)) {
            err = "Failed to retrieve socket name for \"" + shown_host + ":" + port + "\": " + errno_text(errno);
            freeaddrinfo(ai);
            return Outcome::DidNotListen;
          }
          retport = std::to_string(p);
          port = retport;
          redo = true;
          break;
        }
        retport = port;
      }
    }
    freeaddrinfo(ai);
  }

  if (fds.empty()) {
    if (bind_errors.size() == 1) {
      err = bind_errors.front();
    } else {
      err = "Failed to bind \"" + shown_host + ":" + port + "\"";
      for (size_t i = 0; i < bind_errors.size(); ++i) err += (i ? "; " : ": ") + bind_errors[i];
    }
    return Outcome::DidNotListen;
  }

  std::string address = "tcp:host=" + escape_address_value(host) + ",port=" + retport;
  if (have_v4 != have_v6) address += have_v4 ? ",family=ipv4" : ",family=ipv6";
  address += ",guid=" + std::string(guid);
  for (auto& l : fds) {
    l.connect_address = address;
    out.push_back(std::move(l));
  }
  return Outcome::Ok;
}

// An address clients can use for a socket we did not create ourselves.
bool address_from_socket(int fd, std::string& address, bool& is_unix, std::string& err) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &sl) != 0) {
    err = "Failed to read address from socket: " + errno_text(errno);
    return false;
  }
  if (ss.ss_family == AF_UNIX) {
    auto* un = reinterpret_cast<struct sockaddr_un*>(&ss);
    size_t n = sl > offsetof(struct sockaddr_un, sun_path) ? sl - offsetof(struct sockaddr_un, sun_path) : 0;
    is_unix = true;
    if (n > 0 && un->sun_path[0] == '\0') {
      address = "unix:abstract=" + escape_address_value(std::string(un->sun_path + 1, strnlen(un->sun_path + 1, n - 1)));
    } else {
      address = "unix:path=" + escape_address_value(std::string(un->sun_path, strnlen(un->sun_path, n)));
    }
    return true;
  }
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    std::string h;
    unsigned p = 0;
    if (!sockaddr_host_port(reinterpret_cast<struct sockaddr*>(&ss), sl, h, p)) {
      err = "Failed to read address from socket: cannot convert address";
      return false;
    }
    is_unix = false;
    address = std::string("tcp:family=") + (ss.ss_family == AF_INET ? "ipv4" : "ipv6") +
              ",port=" + std::to_string(p) + ",host=" + escape_address_value(h);
    return true;
  }
  err = "Failed to read address from socket: Unknown socket type.";
  return false;
}

Outcome listen_systemd_entry(std::string_view guid, std::vector<Listener>& out, std::string& err) {
  const char* pid_s = getenv("LISTEN_PID");
  const char* fds_s = getenv("LISTEN_FDS");
  long n = 0;
  if (pid_s && fds_s) {
    char* end = nullptr;
    long pid = std::strtol(pid_s, &end, 10);
    if (*pid_s && !*end && pid == static_cast<long>(getpid())) {
      n = std::strtol(fds_s, &end, 10);
      if (!*fds_s || *end || n < 0) n = 0;
    }
  }
  // Like sd_listen_fds(1): children we spawn must not think the sockets are
  // theirs.
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (n <= 0) {
    err = "No socket received.";
    return Outcome::DidNotListen;
  }
  std::vector<Listener> got;
  for (int fd = 3; fd < 3 + n; ++fd) {
    int type = 0, listening = 0;
    socklen_t l1 = sizeof type, l2 = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) != 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) != 0 || !listening) {
      err = "Received socket was not of the right type";
      // The descriptors were handed to us: close them all, taken or not.
      for (int k = fd; k < 3 + n; ++k) ::close(k);
      return Outcome::DidNotListen;
    }
    Listener l;
    l.fd.reset(fd);
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    std::string address;
    if (!address_from_socket(fd, address, l.is_unix, err)) {
      for (int k = fd + 1; k < 3 + n; ++k) ::close(k);
      return Outcome::DidNotListen;
    }
    l.connect_address = address + ",guid=" + std::string(guid);
    got.push_back(std::move(l));
  }
  for (auto& l : got) out.push_back(std::move(l));
  return Outcome::Ok;
}

Outcome listen_entry(const Entry& e, std::string_view guid, std::vector<Listener>& out, std::string& err) {
  if (e.method == "unix") return listen_unix_entry(e, guid, out, err);
  if (e.method == "tcp") return listen_tcp_entry(e, guid, out, err);
  if (e.method == "systemd") return listen_systemd_entry(guid, out, err);
  if (e.method == "nonce-tcp") {
    err = "Address type 'nonce-tcp' is not supported by this bus";
    return Outcome::DidNotListen;
  }
  return Outcome::NotHandled;
}

}  // namespace

const std::string* AddressEntry::get(const char* key) const {
  for (const auto& p : kv)
    if (p.first == key) return &p.second;
  return nullptr;
}

bool parse_addresses(std::string_view address, std::vector<AddressEntry>& entries, std::string& err) {
  size_t pos = 0;
  while (pos < address.size()) {
    size_t end = address.find(';', pos);
    if (end == std::string_view::npos) end = address.size();
    size_t colon = address.substr(pos, end - pos).find(':');
    if (colon == std::string_view::npos) {
      err = "Address does not contain a colon";
      return false;
    }
    AddressEntry e;
    e.method = std::string(address.substr(pos, colon));
    pos += colon + 1;
    while (pos < end) {
      size_t comma = address.substr(pos, end - pos).find(',');
      comma = comma == std::string_view::npos ? end : pos + comma;
      size_t eq = address.substr(pos, comma - pos).find('=');
      if (eq == std::string_view::npos || eq == 0 || pos + eq + 1 == comma) {
        err = "'=' character not found or has no value following it";
        return false;
      }
      std::string value;
      if (!unescape(address.substr(pos + eq + 1, comma - pos - eq - 1), value, err)) return false;
      e.kv.emplace_back(std::string(address.substr(pos, eq)), std::move(value));
      pos = comma + 1;
    }
    entries.push_back(std::move(e));
    pos = end + 1;
  }
  return true;
}

std::string escape_address_value(std::string_view v) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(v.size());
  for (unsigned char c : v) {
    if (optionally_escaped(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0xf];
    }
  }
  return out;
}

bool unescape_address_value(std::string_view v, std::string& out) {
  std::string err;
  return unescape(v, out, err);
}

bool adopt_listener(int fd, std::string_view connect_address, Listener& out, std::string& err) {
  std::vector<Entry> entries;
  if (!parse_addresses(connect_address, entries, err)) return false;
  if (entries.size() != 1 || (entries[0].method != "unix" && entries[0].method != "tcp")) {
    err = "Unusable address for a received socket: " + std::string(connect_address);
    return false;
  }
  int type = 0, listening = 0;
  socklen_t l1 = sizeof type, l2 = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) != 0 || type != SOCK_STREAM ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) != 0 || !listening) {
    err = "Received socket was not of the right type";
    return false;
  }
  fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  out.fd.reset(fd);
  out.is_unix = entries[0].method == "unix";
  out.connect_address = std::string(connect_address);
  const std::string* path = entries[0].get("path");
  out.unlink_path = out.is_unix && path != nullptr ? *path : std::string();
  return true;
}

bool listen_addresses(std::string_view addresses, std::string_view guid, std::vector<Listener>& out,
                      std::string& err) {
  std::vector<Entry> entries;
  if (!parse_addresses(addresses, entries, err)) return false;

  // dbus_server_listen semantics: entries are alternatives tried in order;
  // the first one that listens is used, a malformed one aborts, and if none
  // listens the first failure is reported.
  std::string first_error;
  bool handled = false;
  for (const Entry& e : entries) {
    std::vector<Listener> got;
    std::string e_err;
    Outcome o = listen_entry(e, guid, got, e_err);
    if (o == Outcome::Ok) {
      for (auto& l : got) out.push_back(std::move(l));
      return true;
    }
    if (o == Outcome::BadAddress) {
      err = e_err;
      return false;
    }
    if (o == Outcome::DidNotListen) {
      handled = true;
      if (first_error.empty()) first_error = e_err;
    }
  }
  if (!handled) {
    if (entries.empty())
      err = "Empty address '" + std::string(addresses) + "'";
    else
      err = "Unknown address type '" + entries.front().method + "'";
    return false;
  }
  err = first_error;
  return false;
}

}  // namespace wire
