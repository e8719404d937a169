#pragma once
// The part of dbus-daemon's command line the launcher handles itself. Only
// unambiguous, common forms are recognised; anything else (and every error)
// is left to the full parser on the Node.js side, which reports it exactly.
#include <optional>
#include <string>
#include <vector>

namespace launcher {

struct Args {
  std::string config_file;
  std::string address;                 // --address (empty: the configuration's <listen>s)
  std::optional<int> print_address_fd;  // --print-address[=N]
  std::optional<int> print_pid_fd;      // --print-pid[=N]
  bool fork_always = false;             // --fork
  bool fork_never = false;              // --nofork
  bool write_pidfile = true;            // false with --nopidfile
};

// nullopt when the command line is anything but plain (help, version,
// duplicates, descriptors given as the next word, unknown words, ...).
std::optional<Args> recognise(const std::vector<std::string>& argv);

}  // namespace launcher
