#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <sstream>

#include "../util/fd.h"
#include "../wire/address.h"
#include "../wire/sha1.h"

namespace launcher {

namespace {

constexpr const char* kMagic = "kdbus-bridge start plan 1";
constexpr size_t kMaxPlanSize = 256 * 1024;

// Safe to trust: ours alone. A plan someone else could write would let them
// choose where the bus listens.
bool private_to_us(const struct stat& st) {
  return st.st_uid == geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

uint64_t ns(const struct timespec& t) {
  return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_nsec);
}

// "dev ino size mtime_ns ctime_ns" as the Node.js side writes it.
std::string stamp(const struct stat& st) {
  return std::to_string(static_cast<uint64_t>(st.st_dev)) + " " + std::to_string(static_cast<uint64_t>(st.st_ino)) + " " +
         std::to_string(static_cast<uint64_t>(st.st_size)) + " " + std::to_string(ns(st.st_mtim)) + " " +
         std::to_string(ns(st.st_ctim));
}

bool read_file(int fd, std::string& out) {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxPlanSize) return false;
  }
}

bool unescape(const std::string& v, std::string& out) { return wire::unescape_address_value(v, out); }

}  // namespace

std::string cache_dir() {
  if (const char* d = std::getenv("KDBUS_BRIDGE_CACHE_DIR")) return d;
  if (geteuid() == 0) return "/var/cache/kdbus-bridge";
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/kdbus-bridge";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.cache/kdbus-bridge";
  return "";
}

std::string plan_file(const std::string& dir, const std::string& config_file) {
  return dir + "/plan-" + wire::sha1_hex(config_file);
}

std::optional<Plan> load_plan(const std::string& config_file) {
  const std::string dir = cache_dir();
  if (dir.empty()) return std::nullopt;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !private_to_us(st)) return std::nullopt;
  util::UniqueFd fd(::open(plan_file(dir, config_file).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !private_to_us(st)) return std::nullopt;
  std::string text;
  if (!read_file(fd.get(), text)) return std::nullopt;

  Plan plan;
  std::istringstream lines(text);
  std::string line;
  if (!std::getline(lines, line) || line != kMagic) return std::nullopt;
  bool config_matches = false, complete = false;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string kind, value;
    words >> kind;
    if (kind == "end") {
      complete = true;
      break;
    }
    if (!(words >> value)) return std::nullopt;
    std::string decoded;
    if (!unescape(value, decoded)) return std::nullopt;
    if (kind == "config") {
      config_matches = decoded == config_file;
    } else if (kind == "fork") {
      plan.fork = decoded == "1";
    } else if (kind == "user") {
      plan.user = decoded == "1";
    } else if (kind == "pidfile") {
      plan.pidfile = decoded == "1";
    } else if (kind == "listen") {
      plan.listen.push_back(decoded);
    } else if (kind == "file" || kind == "dir") {
      std::string rest;
      std::getline(words, rest);
      if (rest.empty() || rest[0] != ' ') return std::nullopt;
      if (::stat(decoded.c_str(), &st) != 0) return std::nullopt;
      if ((kind == "file") != S_ISREG(st.st_mode) || (kind == "dir") != S_ISDIR(st.st_mode)) return std::nullopt;
      if (rest.substr(1) != stamp(st)) return std::nullopt;
    } else if (kind == "absent") {
      if (::stat(decoded.c_str(), &st) == 0 || errno != ENOENT) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  if (!config_matches || !complete) return std::nullopt;
  return plan;
}

}  // namespace launcher
