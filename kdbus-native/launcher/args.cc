#include "args.h"

#include <cstring>

namespace launcher {

namespace {

constexpr const char* kSessionConfig = "/usr/share/dbus-1/session.conf";
constexpr const char* kSystemConfig = "/usr/share/dbus-1/system.conf";

bool starts_with(const std::string& s, const char* prefix) { return s.compare(0, std::strlen(prefix), prefix) == 0; }

// Plain decimal only: the full parser takes strtol's base 0 and its range
// checks, which are not worth repeating for a rare spelling.
std::optional<int> descriptor(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  return v;
}

}  // namespace

std::optional<Args> recognise(const std::vector<std::string>& argv) {
  Args a;
  bool have_config = false, have_address = false, have_addr_fd = false, have_pid_fd = false;
  std::string pending;  // "--config-file" or "--address" waiting for its word
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (!pending.empty()) {
      // dbus-daemon would test the word against the options first; a value
      // that looks like one is left to the full parser.
      if (starts_with(arg, "--")) return std::nullopt;
      if (pending == "--config-file") {
        if (have_config) return std::nullopt;
        have_config = true;
        a.config_file = arg;
      } else {
        if (have_address) return std::nullopt;
        have_address = true;
        a.address = arg;
      }
      pending.clear();
      continue;
    }
    // A bare --print-address/--print-pid takes the next word as its
    // descriptor unless that word is an option tested before it; to stay
    // clear of that rule, the next word must be an option we know.
    bool bare_print = false;
    if (arg == "--nofork") {
      a.fork_never = true;
      a.fork_always = false;
    } else if (arg == "--fork") {
      a.fork_always = true;
      a.fork_never = false;
    } else if (arg == "--nopidfile") {
      a.write_pidfile = false;
    } else if (arg == "--nosyslog" || arg == "--syslog" || arg == "--syslog-only" || arg == "--systemd-activation") {
      // logging and activation are the Node.js side's business
    } else if (arg == "--session" || arg == "--system") {
      if (have_config) return std::nullopt;
      have_config = true;
      a.config_file = arg == "--session" ? kSessionConfig : kSystemConfig;
    } else if (starts_with(arg, "--config-file=")) {
      if (have_config) return std::nullopt;
      have_config = true;
      a.config_file = arg.substr(std::strlen("--config-file="));
    } else if (arg == "--config-file" || arg == "--address") {
      pending = arg;
    } else if (starts_with(arg, "--address=")) {
      if (have_address) return std::nullopt;
      have_address = true;
      a.address = arg.substr(std::strlen("--address="));
    } else if (starts_with(arg, "--print-address=")) {
      if (have_addr_fd) return std::nullopt;
      have_addr_fd = true;
      a.print_address_fd = descriptor(arg.substr(std::strlen("--print-address=")));
      if (!a.print_address_fd) return std::nullopt;
    } else if (starts_with(arg, "--print-pid=")) {
      if (have_pid_fd) return std::nullopt;
      have_pid_fd = true;
      a.print_pid_fd = descriptor(arg.substr(std::strlen("--print-pid=")));
      if (!a.print_pid_fd) return std::nullopt;
    } else if (arg == "--print-address" || arg == "--print-pid") {
      bare_print = true;
    } else {
      return std::nullopt;
    }
    if (bare_print) {
      const bool addr = arg == "--print-address";
      std::optional<int>& fd = addr ? a.print_address_fd : a.print_pid_fd;
      bool& have_fd = addr ? have_addr_fd : have_pid_fd;
      const std::string* next = i + 1 < argv.size() ? &argv[i + 1] : nullptr;
      if (next != nullptr && !starts_with(*next, "--")) {
        // "--print-address 4", as dbus-run-session says it
        if (have_fd) return std::nullopt;
        have_fd = true;
        fd = descriptor(*next);
        if (!fd) return std::nullopt;
        ++i;
      } else {
        if (next != nullptr && starts_with(*next, "--print-")) return std::nullopt;
        if (!fd) fd = 1;
      }
    }
  }
  if (!pending.empty() || !have_config || a.config_file.empty()) return std::nullopt;
  return a;
}

}  // namespace launcher
