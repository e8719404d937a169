// sd_notify(3) for the control plane: tells the service manager that started
// the bus (systemd's NOTIFY_SOCKET) about readiness, reloads and shutdown,
// and hands it descriptors to keep across a restart (its file descriptor
// store, bridge/handover/fdstore.ts). Node has no datagram unix sockets, and
// systemd has no other channel.
#include <napi.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "util/fd.h"

namespace {

// SCM_MAX_FD: the kernel refuses more descriptors in one message.
constexpr size_t kMaxFds = 253;

// Returns 0 or an errno: the socket address is "/path" or "@abstract".
// `fds` go along as SCM_RIGHTS (FDSTORE=1, BARRIER=1).
int Send(const std::string& address, const std::string& state, const std::vector<int>& fds = {}) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (address.size() < 2 || (address[0] != '/' && address[0] != '@') || address.size() >= sizeof sa.sun_path)
    return EINVAL;
  std::memcpy(sa.sun_path, address.data(), address.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  if (address[0] == '@') {
    sa.sun_path[0] = '\0';
  } else {
    len += 1;  // a path address counts its terminating NUL
  }
  util::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno;
  if (fds.size() > kMaxFds) return EINVAL;
  iovec iov{const_cast<char*>(state.data()), state.size()};
  msghdr msg{};
  msg.msg_name = &sa;
  msg.msg_namelen = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd.get(), &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return 0;
}

// sd_notify_barrier(3): BARRIER=1 with the write end of a pipe; the service
// manager closes it once it has dealt with every message sent before, which
// the read end sees as a hang-up. 0, or an errno (ETIMEDOUT).
int Barrier(const std::string& address, int timeout_ms) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return errno;
  util::UniqueFd read_end(p[0]);
  util::UniqueFd write_end(p[1]);
  const int rc = Send(address, "BARRIER=1", {write_end.get()});
  if (rc != 0) return rc;
  write_end.reset();
  pollfd pfd{read_end.get(), 0, 0};
  for (;;) {
    const int n = ::poll(&pfd, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return ETIMEDOUT;
    return (pfd.revents & POLLHUP) ? 0 : EIO;
  }
}

Napi::Value Notify(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(info.Env(), "notify(socket, state) needs two strings");
  const int rc = Send(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  return Napi::Number::New(info.Env(), rc);
}

// notifyFds(socket, state, fds): one message carrying up to 253 descriptors.
Napi::Value NotifyFds(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsArray())
    throw Napi::TypeError::New(info.Env(), "notifyFds(socket, state, fds) needs two strings and an array");
  auto arr = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); ++i) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  const int rc = Send(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(), fds);
  return Napi::Number::New(info.Env(), rc);
}

Napi::Value NotifyBarrier(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "notifyBarrier(socket, timeoutMs)");
  return Napi::Number::New(info.Env(), Barrier(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value()));
}

// A connected stream socket whose other end is already closed: stands in for
// a connection the service manager dropped from its store (it closes stored
// descriptors that hang up), so that the restored peer sees the hang-up and
// goes the ordinary way. A descriptor, or a negative errno.
Napi::Value HungUpSocket(const Napi::CallbackInfo& info) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return Napi::Number::New(info.Env(), -errno);
  ::close(sv[1]);
  return Napi::Number::New(info.Env(), sv[0]);
}

}  // namespace

namespace bridge {

void register_notify(Napi::Env env, Napi::Object exports) {
  exports.Set("notify", Napi::Function::New(env, Notify));
  exports.Set("notifyFds", Napi::Function::New(env, NotifyFds));
  exports.Set("notifyBarrier", Napi::Function::New(env, NotifyBarrier));
  exports.Set("hungUpSocket", Napi::Function::New(env, HungUpSocket));
}

}  // namespace bridge
