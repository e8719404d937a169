// bin/kdbus-bridge's executable: starts the bus's Node.js process, and
// first, when it can do so exactly as that process would, binds the
// listening sockets and prints the address itself, so that whoever waits
// for the address (dbus-run-session, a login manager) need not wait for
// Node.js to load. The Node.js process (same pid: this program execs it)
// then serves the sockets it is handed; clients that connect meanwhile wait
// in the listen backlog, as under socket activation.
//
// The fast path needs a start plan (plan.h) that the Node.js side wrote on
// a previous start with the same configuration, unchanged since. Without
// one, or for anything unusual, Node.js does everything as before.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../wire/address.h"
#include "../wire/random.h"
#include "args.h"
#include "plan.h"

namespace {

// Tells the Node.js side which descriptors listen where (bridge/handoff.ts).
constexpr const char* kHandoffEnv = "KDBUS_BRIDGE_LISTENING";
constexpr const char* kReadyFdEnv = "KDBUS_BRIDGE_READY_FD";
constexpr const char* kSweeperFdEnv = "KDBUS_BRIDGE_SWEEPER_FD";
// The fd limit the bus was started with, before Node.js raises it, for the
// services it starts (bridge/activation/fd-limit.ts).
constexpr const char* kStartLimitEnv = "KDBUS_BRIDGE_NOFILE";

std::string dirname_of(const std::string& p) {
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

// This program lives at <package>/build/Release/; the JavaScript entry at
// <package>/bin/kdbus-bridge.js.
std::string node_entry() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string exe(buf, static_cast<size_t>(n));
  return dirname_of(dirname_of(dirname_of(exe))) + "/bin/kdbus-bridge.js";
}

// The node that execvp would run, so that failing to find it is known
// before anything is printed.
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= dirs.size()) {
    size_t end = dirs.find(':', pos);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(pos, end - pos);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    pos = end + 1;
  }
  return "";
}

[[noreturn]] void run_node(const std::string& node, const std::string& entry, int argc, char** argv) {
  std::vector<char*> args;
  std::string node_arg = "node";
  args.push_back(node_arg.data());
  std::string entry_arg = entry;
  args.push_back(entry_arg.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  if (node.empty())
    ::execvp("node", args.data());
  else
    ::execv(node.c_str(), args.data());
  std::fprintf(stderr, "kdbus-bridge: cannot run node: %s\n", std::strerror(errno));
  std::exit(127);
}

// As Node.js's path.resolve: absolute, without "." and ".." and repeated slashes.
std::string resolve(const std::string& p) {
  std::string full = p;
  if (p.empty() || p[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return "";
    full = std::string(cwd) + "/" + p;
  }
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos < full.size()) {
    size_t end = full.find('/', pos);
    if (end == std::string::npos) end = full.size();
    std::string part = full.substr(pos, end - pos);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    pos = end + 1;
  }
  std::string out;
  for (const auto& part : parts) out += "/" + part;
  return out.empty() ? "/" : out;
}

bool write_all(int fd, const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void unlink_all(const std::vector<wire::Listener>& listeners) {
  for (const auto& l : listeners)
    if (!l.unlink_path.empty()) ::unlink(l.unlink_path.c_str());
}

struct Prepared {
  std::vector<wire::Listener> listeners;
  std::string handoff;
};

// Everything the fast path does before printing; nullopt = leave it all to Node.js.
std::optional<Prepared> prepare(const std::vector<std::string>& words) {
  if (std::getenv(kReadyFdEnv) != nullptr || std::getenv(kHandoffEnv) != nullptr) return std::nullopt;
  auto args = launcher::recognise(words);
  if (!args || args->fork_always) return std::nullopt;
  const std::string config = resolve(args->config_file);
  // A configuration passed as a descriptor is new every time.
  if (config.empty() || config.rfind("/proc/", 0) == 0 || config.rfind("/dev/", 0) == 0) return std::nullopt;
  auto plan = launcher::load_plan(config);
  if (!plan) return std::nullopt;
  if (plan->fork && !args->fork_never) return std::nullopt;
  if (plan->pidfile && args->write_pidfile) return std::nullopt;
  if (plan->user && ::getuid() == 0) return std::nullopt;
  std::vector<std::string> addresses = args->address.empty() ? plan->listen : std::vector<std::string>{args->address};
  if (addresses.empty()) return std::nullopt;
  for (const auto& a : addresses) {
    std::vector<wire::AddressEntry> entries;
    std::string err;
    if (!wire::parse_addresses(a, entries, err)) return std::nullopt;
    for (const auto& e : entries)
      if (e.method != "unix" && e.method != "tcp") return std::nullopt;
  }
  for (auto fd : {args->print_address_fd, args->print_pid_fd})
    if (fd && ::fcntl(*fd, F_GETFD) < 0) return std::nullopt;

  unsigned char raw[16];
  if (!wire::random_bytes(raw, sizeof raw)) return std::nullopt;
  const std::string guid = wire::hex_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
  Prepared p;
  for (const auto& a : addresses) {
    std::string err;
    if (!wire::listen_addresses(a, guid, p.listeners, err)) {
      // Node.js will fail the same way and say so.
      unlink_all(p.listeners);
      return std::nullopt;
    }
  }
  p.handoff = guid;
  for (const auto& l : p.listeners) p.handoff += "\n" + std::to_string(l.fd.get()) + " " + l.connect_address;

  // --print-address then --print-pid, grouped by descriptor, each closed
  // after it is written unless it is standard output or error: as the
  // Node.js side prints (bridge/main.ts).
  std::vector<std::pair<int, std::string>> per_fd;
  auto add = [&per_fd](std::optional<int> fd, const std::string& text) {
    if (!fd) return;
    for (auto& entry : per_fd)
      if (entry.first == *fd) {
        entry.second += text;
        return;
      }
    per_fd.emplace_back(*fd, text);
  };
  add(args->print_address_fd, p.listeners.front().connect_address + "\n");
  add(args->print_pid_fd, std::to_string(::getpid()) + "\n");
  struct sigaction ignore = {}, previous = {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &previous);
  for (const auto& [fd, text] : per_fd) {
    if (!write_all(fd, text)) {
      std::string line = "kdbus-bridge[" + std::to_string(::getpid()) +
                         "]: Failed to start message bus: Writing to pipe: " + std::strerror(errno) + "\n";
      write_all(2, line);
      unlink_all(p.listeners);
      std::exit(1);
    }
    if (fd > 2) ::close(fd);
  }
  ::sigaction(SIGPIPE, &previous, nullptr);
  return p;
}

// Until Node.js has installed its signal handlers, SIGTERM (dbus-run-session
// stops its bus with it as soon as its command is done) kills the process
// at once, and would leave the socket files behind; so would Node.js failing
// before it serves. A detached process keeps their paths and removes them
// unless the bus writes to the returned pipe first (bridge/handoff.ts);
// the bus's own exit removes them from then on. Returns -1 if not needed.
int start_sweeper(const std::vector<wire::Listener>& listeners) {
  std::vector<std::string> paths;
  for (const auto& l : listeners)
    if (!l.unlink_path.empty()) paths.push_back(l.unlink_path);
  if (paths.empty()) return -1;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return -1;
  }
  if (child == 0) {
    // Twice, so that init, not the bus, reaps it; in its own session, so
    // that what stops the bus's process group does not stop it too.
    if (::fork() != 0) ::_exit(0);
    ::setsid();
    ::dup2(pipe_fds[0], 0);
    const int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::closefrom(3);
    char byte;
    ssize_t n;
    while ((n = ::read(0, &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n == 0)
      for (const auto& p : paths) ::unlink(p.c_str());
    ::_exit(0);
  }
  ::close(pipe_fds[0]);
  int status;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return pipe_fds[1];
}

std::string limit_word(rlim_t v) { return v == RLIM_INFINITY ? "infinity" : std::to_string(v); }

// Kept across an in-place upgrade, which execs Node.js with the bus's
// environment: the limit is the one of the first start.
void record_start_limit() {
  struct rlimit lim;
  if (std::getenv(kStartLimitEnv) != nullptr || ::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  ::setenv(kStartLimitEnv, (limit_word(lim.rlim_cur) + ":" + limit_word(lim.rlim_max)).c_str(), 1);
}

}  // namespace

int main(int argc, char** argv) {
  record_start_limit();
  const std::string entry = node_entry();
  const std::string node = find_node();
  if (entry.empty() || node.empty()) run_node(node, entry, argc, argv);
  std::vector<std::string> words(argv + 1, argv + argc);
  auto prepared = prepare(words);
  if (prepared) {
    for (auto& l : prepared->listeners) {
      int fd = l.fd.release();
      ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) & ~FD_CLOEXEC);
    }
    const int sweeper = start_sweeper(prepared->listeners);
    if (sweeper >= 0) {
      ::fcntl(sweeper, F_SETFD, 0);
      ::setenv(kSweeperFdEnv, std::to_string(sweeper).c_str(), 1);
    }
    ::setenv(kHandoffEnv, prepared->handoff.c_str(), 1);
  }
  run_node(node, entry, argc, argv);
}
