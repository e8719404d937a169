// sd_notify(3) for the control plane: tells the service manager that started
// the bus (systemd's NOTIFY_SOCKET) about readiness, reloads and shutdown.
// Node has no datagram unix sockets, and systemd has no other channel.
#include <napi.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/fd.h"

namespace {

// Returns 0 or an errno: the socket address is "/path" or "@abstract".
int Send(const std::string& address, const std::string& state) {
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
  ssize_t n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&sa), len);
  if (n < 0) return errno;
  return 0;
}

Napi::Value Notify(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(info.Env(), "notify(socket, state) needs two strings");
  const int rc = Send(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  return Napi::Number::New(info.Env(), rc);
}

}  // namespace

namespace bridge {

void register_notify(Napi::Env env, Napi::Object exports) { exports.Set("notify", Napi::Function::New(env, Notify)); }

}  // namespace bridge
