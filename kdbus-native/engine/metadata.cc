// Peer credentials from the kernel, as kdbus attaches them at HELLO.
#include "metadata.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older C libraries lack the constant
#endif

namespace kdbus {
namespace {

void capture_groups(int fd, Metadata& md) {
  std::vector<gid_t> groups(16);
  for (int attempt = 0; attempt < 8; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      if (md.has_creds) groups.push_back(md.gid);
      std::sort(groups.begin(), groups.end());
      groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
      md.groups = std::move(groups);
      md.has_groups = true;
      return;
    }
    // ERANGE reports the size needed in len.
    if (errno != ERANGE) return;
    size_t want = len / sizeof(gid_t);
    groups.resize(std::max(want, groups.size() * 2));
  }
}

// Without a security module that labels sockets every connection would ask
// in vain; modules are not loaded at run time, so the first answer holds.
std::atomic<bool> seclabels_unsupported{false};

void capture_seclabel(int fd, Metadata& md) {
  if (seclabels_unsupported.load(std::memory_order_relaxed)) return;
  std::vector<char> buf(256);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t len = static_cast<socklen_t>(buf.size());
    if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf.data(), &len) == 0) {
      std::string label(buf.data(), std::min<size_t>(len, buf.size()));
      while (!label.empty() && label.back() == '\0') label.pop_back();
      md.seclabel = std::move(label);
      md.has_seclabel = true;
      return;
    }
    // ENOPROTOOPT: no security module labels sockets; the label is absent.
    if (errno == ENOPROTOOPT) seclabels_unsupported.store(true, std::memory_order_relaxed);
    if (errno != ERANGE) return;
    buf.resize(std::max<size_t>(len, buf.size() * 2));
  }
}

}  // namespace

std::string capture_command(pid_t pid) {
  constexpr size_t kMaxLogCommand = 50;  // what dbus-daemon shows of a command line
  const std::string path = "/proc/" + std::to_string(pid) + "/cmdline";
  util::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return {};
  char buf[kMaxLogCommand];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return {};
  std::string out(buf, static_cast<size_t>(n));
  if (out.back() == '\0') out.pop_back();
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0)
      c = ' ';
    else if (u < 0x20 || u > 127)
      c = '?';
  }
  return out;
}

std::shared_ptr<util::UniqueFd> capture_pidfd(int socket_fd) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
    return std::make_shared<util::UniqueFd>(pidfd);
  }
  return nullptr;
}

Metadata capture_peer_metadata(int socket_fd) {
  Metadata md;
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof(cred)) {
    md.has_creds = true;
    md.pid = cred.pid;
    md.uid = cred.uid;
    md.gid = cred.gid;
  }
  capture_groups(socket_fd, md);
  capture_seclabel(socket_fd, md);
  return md;
}

namespace {

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

ProcessFacts capture_process_facts(pid_t pid) {
  ProcessFacts f;
  if (pid <= 0) return f;
  const std::string dir = "/proc/" + std::to_string(pid) + "/";
  f.comm = read_whole(dir + "comm");
  if (!f.comm.empty() && f.comm.back() == '\n') f.comm.pop_back();
  f.cmdline = read_whole(dir + "cmdline");
  std::vector<char> buf(4096);
  ssize_t n = readlink((dir + "exe").c_str(), buf.data(), buf.size());
  if (n > 0) f.exe.assign(buf.data(), static_cast<size_t>(n));
  // The command name in stat may hold spaces and parentheses: ppid is the
  // second field after the last ')'.
  const std::string stat = read_whole(dir + "stat");
  const size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    long ppid = 0;
    if (rest >> state >> ppid) f.ppid = static_cast<pid_t>(ppid);
  }
  std::istringstream cg(read_whole(dir + "cgroup"));
  std::string line, first;
  while (std::getline(cg, line)) {
    if (first.empty()) first = line;
    if (line.rfind("0::", 0) == 0) {
      f.cgroup = line.substr(3);
      break;
    }
  }
  if (f.cgroup.empty()) f.cgroup = first;
  return f;
}

}  // namespace kdbus
