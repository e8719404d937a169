// kdbus-bridge-service-exec SOFT:HARD PROGRAM [ARG...]
//
// Runs an activated service with the fd limit the bus was started with, as
// dbus-daemon does between fork and exec: the bus raises its own limit to
// serve many clients, and a service should not inherit that. Node.js cannot
// run code in a child before exec, so the bus starts services through this.
//
// fd 3 is the bus's end of an exec report: left empty when PROGRAM runs
// (close-on-exec), or the errno of the failed exec as a 4-byte integer, so
// the bus reports the same Spawn.ExecFailed it would without this step.
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace {

constexpr int kReportFd = 3;

std::optional<rlim_t> parse_limit(const std::string& word) {
  if (word == "infinity") return RLIM_INFINITY;
  if (word.empty() || word.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  errno = 0;
  const unsigned long long v = std::strtoull(word.c_str(), nullptr, 10);
  if (errno != 0) return std::nullopt;
  return static_cast<rlim_t>(v);
}

[[noreturn]] void fail(int err) {
  const int32_t value = err;
  ssize_t n;
  while ((n = ::write(kReportFd, &value, sizeof value)) < 0 && errno == EINTR) {
  }
  ::_exit(127);
}

// As libuv's spawn, which started services before: PATH from the service's
// environment, and no /bin/sh retry for ENOEXEC (execvp has one).
[[noreturn]] void exec_program(char** argv) {
  const std::string file = argv[0];
  if (file.find('/') != std::string::npos) {
    ::execv(argv[0], argv);
    fail(errno);
  }
  const char* path = std::getenv("PATH");
  const std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  int first_error = ENOENT;
  size_t pos = 0;
  while (pos <= dirs.size()) {
    size_t end = dirs.find(':', pos);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(pos, end - pos);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
    ::execv(candidate.c_str(), argv);
    // Like execvp: a directory that does not hold it is no answer, anything else is.
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) fail(errno);
    if (errno == EACCES) first_error = EACCES;
    pos = end + 1;
  }
  fail(first_error);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SOFT:HARD PROGRAM [ARG...]\n", argv[0]);
    return 2;
  }
  const std::string spec = argv[1];
  const size_t colon = spec.find(':');
  const auto soft = colon == std::string::npos ? std::nullopt : parse_limit(spec.substr(0, colon));
  const auto hard = colon == std::string::npos ? std::nullopt : parse_limit(spec.substr(colon + 1));
  if (!soft || !hard) {
    std::fprintf(stderr, "%s: not a SOFT:HARD limit: %s\n", argv[0], spec.c_str());
    return 2;
  }
  // A limit below what this process may hold is what dbus-daemon restores
  // too; lowering cannot fail for want of privilege, raising back might,
  // and then the service keeps what it would have had from the bus.
  struct rlimit lim = {*soft, *hard};
  ::setrlimit(RLIMIT_NOFILE, &lim);
  ::fcntl(kReportFd, F_SETFD, FD_CLOEXEC);
  exec_program(argv + 2);
}
