// System calls the control plane needs to hand the bus over and that Node.js
// does not offer: memory files, descriptor flags, execve in the same
// process, descriptors over a unix socket (SCM_RIGHTS), pidfds, and a watch
// on a descriptor's readiness. Handing over happens while the bus is frozen,
// so the transfers here block on purpose: nothing else may move meanwhile.
#include <napi.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "util/fd.h"

namespace {

// SCM_MAX_FD: how many descriptors one message may carry.
constexpr size_t kFdsPerMessage = 253;
// Within the default socket buffer, so a message never waits for room it cannot get.
constexpr size_t kChunk = 32 * 1024;
enum Kind : uint8_t { kHeader = 'H', kData = 'D', kFds = 'F', kEnd = 'E', kWord = 'W' };

[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  throw e;
}

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "a file descriptor is needed");
  return info[i].As<Napi::Number>().Int32Value();
}

Napi::Value MemfdFromBuffer(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "memfdFromBuffer(buffer)");
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  util::UniqueFd fd(static_cast<int>(::syscall(SYS_memfd_create, "kdbus-bridge-handover", MFD_CLOEXEC)));
  if (!fd.valid()) ThrowErrno(info.Env(), "memfd_create", errno);
  size_t off = 0;
  while (off < buf.Length()) {
    ssize_t n = ::write(fd.get(), buf.Data() + off, buf.Length() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(info.Env(), "write to memfd", errno);
    off += static_cast<size_t>(n);
  }
  return Napi::Number::New(info.Env(), fd.release());
}

// The whole content from offset 0, whatever the file offset is.
Napi::Value ReadFd(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 16);
  for (;;) {
    ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(info.Env(), "read", errno);
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), out.size());
}

Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  const bool on = info.Length() < 2 || info[1].ToBoolean();
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return Napi::Number::New(info.Env(), errno);
  flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  return Napi::Number::New(info.Env(), ::fcntl(fd, F_SETFD, flags) < 0 ? errno : 0);
}

Napi::Value ClearCloexec(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) return Napi::Number::New(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// A close-on-exec copy of fd, or -errno. What passing it to another process
// gives: a bus restored in the process that froze it takes copies, as one
// restored after an exec or in a successor has fds of its own.
Napi::Value DuplicateFd(const Napi::CallbackInfo& info) {
  const int copy = ::fcntl(FdArg(info, 0), F_DUPFD_CLOEXEC, 3);
  return Napi::Number::New(info.Env(), copy < 0 ? -errno : copy);
}

std::vector<std::string> Strings(const Napi::Value& v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(arr.Get(i).ToString().Utf8Value());
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (auto& s : v) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

// Replaces the process image; returns only on failure, with the errno.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "execve(path, argv, env)");
  std::string file = info[0].As<Napi::String>().Utf8Value();
  auto argv = Strings(info[1]);
  auto env = Strings(info[2]);
  auto argp = Pointers(argv);
  auto envp = Pointers(env);
  ::execve(file.c_str(), argp.data(), envp.data());
  return Napi::Number::New(info.Env(), errno);
}

bool FillAddress(const std::string& path, sockaddr_un& sa) {
  sa = sockaddr_un{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path.data(), path.size());
  return true;
}

// A private rendezvous for a successor: only the bus's own user (or root)
// can connect, checked again on accept.
Napi::Value HandoverListen(const Napi::CallbackInfo& info) {
  const std::string path = info[0].ToString().Utf8Value();
  sockaddr_un sa;
  if (!FillAddress(path, sa)) ThrowErrno(info.Env(), "handover socket path", ENAMETOOLONG);
  util::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) ThrowErrno(info.Env(), "socket", errno);
  const mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  const int err = errno;
  ::umask(old);
  if (rc < 0) ThrowErrno(info.Env(), "bind " + path, err);
  if (::listen(fd.get(), 4) < 0) ThrowErrno(info.Env(), "listen", errno);
  return Napi::Number::New(info.Env(), fd.release());
}

// null when nobody is waiting; otherwise the connection and who made it.
Napi::Value HandoverAccept(const Napi::CallbackInfo& info) {
  const int lfd = FdArg(info, 0);
  util::UniqueFd fd(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return info.Env().Null();
    ThrowErrno(info.Env(), "accept", errno);
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) ThrowErrno(info.Env(), "SO_PEERCRED", errno);
  auto out = Napi::Object::New(info.Env());
  out.Set("uid", Napi::Number::New(info.Env(), cred.uid));
  out.Set("pid", Napi::Number::New(info.Env(), cred.pid));
  out.Set("fd", Napi::Number::New(info.Env(), fd.release()));
  return out;
}

Napi::Value HandoverConnect(const Napi::CallbackInfo& info) {
  const std::string path = info[0].ToString().Utf8Value();
  sockaddr_un sa;
  if (!FillAddress(path, sa)) ThrowErrno(info.Env(), "handover socket path", ENAMETOOLONG);
  util::UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) ThrowErrno(info.Env(), "socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) ThrowErrno(info.Env(), "connect " + path, errno);
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) ThrowErrno(info.Env(), "SO_PEERCRED", errno);
  // The bus we take over must be our own user's or root's.
  if (cred.uid != ::getuid() && cred.uid != 0) ThrowErrno(info.Env(), "the bus at " + path + " belongs to another user", EPERM);
  return Napi::Number::New(info.Env(), fd.release());
}

int SendPacket(int fd, const std::vector<uint8_t>& bytes, const int* fds, size_t nfds) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<uint8_t> control;
  if (nfds > 0) {
    control.resize(CMSG_SPACE(nfds * sizeof(int)));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : 0;
  }
}

// One packet, waiting at most timeout_ms (-1: forever); ETIMEDOUT, or
// ECONNRESET on end of file. Received descriptors are appended to `fds`.
int RecvPacket(int fd, int timeout_ms, std::vector<uint8_t>& bytes, std::vector<int>& fds) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) return ETIMEDOUT;
    break;
  }
  bytes.assign(kChunk + 16, 0);
  iovec iov{bytes.data(), bytes.size()};
  std::vector<uint8_t> control(CMSG_SPACE(kFdsPerMessage * sizeof(int)));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* got = reinterpret_cast<const int*>(CMSG_DATA(c));
    fds.insert(fds.end(), got, got + count);
  }
  if (n == 0) return ECONNRESET;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return EMSGSIZE;
  bytes.resize(static_cast<size_t>(n));
  return 0;
}

void PutU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// handoverSend(fd, data, fds): H(len, nfds), D..., F..., E. 0 or an errno.
Napi::Value HandoverSend(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  if (info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsArray())
    throw Napi::TypeError::New(info.Env(), "handoverSend(fd, data, fds)");
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<int> fds;
  auto arr = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  std::vector<uint8_t> pkt{kHeader};
  PutU64(pkt, data.Length());
  PutU64(pkt, fds.size());
  if (int rc = SendPacket(fd, pkt, nullptr, 0)) return Napi::Number::New(info.Env(), rc);
  for (size_t off = 0; off < data.Length(); off += kChunk) {
    const size_t n = std::min(kChunk, data.Length() - off);
    pkt.assign(1, kData);
    pkt.insert(pkt.end(), data.Data() + off, data.Data() + off + n);
    if (int rc = SendPacket(fd, pkt, nullptr, 0)) return Napi::Number::New(info.Env(), rc);
  }
  for (size_t off = 0; off < fds.size(); off += kFdsPerMessage) {
    const size_t n = std::min(kFdsPerMessage, fds.size() - off);
    pkt.assign(1, kFds);
    if (int rc = SendPacket(fd, pkt, fds.data() + off, n)) return Napi::Number::New(info.Env(), rc);
  }
  pkt.assign(1, kEnd);
  return Napi::Number::New(info.Env(), SendPacket(fd, pkt, nullptr, 0));
}

// handoverReceive(fd, timeoutMs) -> {data, fds}; throws on a broken transfer
// after closing what it received.
Napi::Value HandoverReceive(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  const int timeout = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  std::vector<int> fds;
  struct Closer {
    std::vector<int>& fds;
    bool keep = false;
    ~Closer() {
      if (!keep)
        for (int f : fds) ::close(f);
    }
  } closer{fds};
  std::vector<uint8_t> pkt;
  std::vector<uint8_t> data;
  uint64_t want_bytes = 0, want_fds = 0;
  bool header = false;
  for (;;) {
    if (int rc = RecvPacket(fd, timeout, pkt, fds)) ThrowErrno(info.Env(), "receiving the bus", rc);
    if (pkt.empty()) ThrowErrno(info.Env(), "receiving the bus: empty packet", EPROTO);
    if (pkt[0] == kHeader && pkt.size() == 17 && !header) {
      header = true;
      want_bytes = GetU64(pkt.data() + 1);
      want_fds = GetU64(pkt.data() + 9);
      data.reserve(want_bytes);
    } else if (pkt[0] == kData && header) {
      data.insert(data.end(), pkt.begin() + 1, pkt.end());
    } else if (pkt[0] == kFds && header) {
      // descriptors already collected by RecvPacket
    } else if (pkt[0] == kEnd && header) {
      break;
    } else if (pkt[0] == kWord) {
      // The bus declined, and says why.
      throw Napi::Error::New(info.Env(), std::string(pkt.begin() + 1, pkt.end()));
    } else {
      ThrowErrno(info.Env(), "receiving the bus: unexpected packet", EPROTO);
    }
  }
  if (data.size() != want_bytes || fds.size() != want_fds)
    ThrowErrno(info.Env(), "receiving the bus: incomplete transfer", EPROTO);
  auto out = Napi::Object::New(info.Env());
  out.Set("data", Napi::Buffer<uint8_t>::Copy(info.Env(), data.data(), data.size()));
  auto arr = Napi::Array::New(info.Env(), fds.size());
  for (size_t i = 0; i < fds.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), fds[i]));
  out.Set("fds", arr);
  closer.keep = true;
  return out;
}

// A short text message either way: the successor's "ok" or its reason to refuse.
Napi::Value HandoverSendWord(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  const std::string word = info[1].ToString().Utf8Value();
  std::vector<uint8_t> pkt{kWord};
  pkt.insert(pkt.end(), word.begin(), word.begin() + static_cast<std::ptrdiff_t>(std::min(word.size(), kChunk)));
  return Napi::Number::New(info.Env(), SendPacket(fd, pkt, nullptr, 0));
}

// The word, or null on timeout or when the other side went away.
Napi::Value HandoverRecvWord(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  const int timeout = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  std::vector<uint8_t> pkt;
  std::vector<int> fds;
  int rc = RecvPacket(fd, timeout, pkt, fds);
  for (int f : fds) ::close(f);
  if (rc != 0 || pkt.empty() || pkt[0] != kWord) return info.Env().Null();
  return Napi::String::New(info.Env(), reinterpret_cast<const char*>(pkt.data() + 1), pkt.size() - 1);
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  const int pid = FdArg(info, 0);
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return Napi::Number::New(info.Env(), fd < 0 ? -errno : fd);
}

// How the process behind a pidfd ended: {code, signal}, null while it runs;
// {code: -1} when it ended but is not our child (its status is not ours to read).
Napi::Value PidfdStatus(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info, 0);
  siginfo_t si{};
  int rc = ::waitid(static_cast<idtype_t>(3 /* P_PIDFD */), static_cast<id_t>(fd), &si, WEXITED | WNOHANG);
  auto out = Napi::Object::New(info.Env());
  if (rc < 0) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return info.Env().Null();
    out.Set("code", Napi::Number::New(info.Env(), -1));
    return out;
  }
  if (si.si_pid == 0) return info.Env().Null();
  const bool signaled = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
  out.Set("code", signaled ? info.Env().Null() : Napi::Number::New(info.Env(), si.si_status));
  out.Set("signal", signaled ? Napi::Number::New(info.Env(), si.si_status) : info.Env().Null());
  return out;
}

// Calls back (once per readiness) while a descriptor is readable, until
// closed: the handover rendezvous and the pidfds of adopted children.
class FdWatch : public Napi::ObjectWrap<FdWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatch", {InstanceMethod("close", &FdWatch::Close)});
  }

  explicit FdWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatch>(info) {
    const int fd = FdArg(info, 0);
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(info.Env(), "FdWatch(fd, callback)");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    handle_ = std::make_unique<uv_poll_t>();
    if (uv_poll_init(loop, handle_.get(), fd) != 0) throw Napi::Error::New(info.Env(), "cannot watch this descriptor");
    handle_->data = this;
    uv_poll_start(handle_.get(), UV_READABLE, &FdWatch::OnReady);
    Ref();  // kept alive by the loop until closed
  }

  ~FdWatch() override { Stop(); }

 private:
  static void OnReady(uv_poll_t* h, int, int) {
    auto* self = static_cast<FdWatch*>(h->data);
    Napi::HandleScope scope(self->Env());
    self->callback_.MakeCallback(self->Value(), {});
  }

  void Stop() {
    if (!handle_) return;
    uv_poll_stop(handle_.get());
    // libuv owns the handle until its close callback.
    uv_close(reinterpret_cast<uv_handle_t*>(handle_.release()),
             [](uv_handle_t* h) { std::unique_ptr<uv_poll_t>(reinterpret_cast<uv_poll_t*>(h)); });
    Unref();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  Napi::FunctionReference callback_;
  std::unique_ptr<uv_poll_t> handle_;
};

}  // namespace

namespace bridge {

void register_fdpass(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdFromBuffer", Napi::Function::New(env, MemfdFromBuffer));
  exports.Set("readFd", Napi::Function::New(env, ReadFd));
  exports.Set("clearCloexec", Napi::Function::New(env, ClearCloexec));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec));
  exports.Set("duplicateFd", Napi::Function::New(env, DuplicateFd));
  exports.Set("execve", Napi::Function::New(env, Execve));
  exports.Set("handoverListen", Napi::Function::New(env, HandoverListen));
  exports.Set("handoverAccept", Napi::Function::New(env, HandoverAccept));
  exports.Set("handoverConnect", Napi::Function::New(env, HandoverConnect));
  exports.Set("handoverSend", Napi::Function::New(env, HandoverSend));
  exports.Set("handoverReceive", Napi::Function::New(env, HandoverReceive));
  exports.Set("handoverSendWord", Napi::Function::New(env, HandoverSendWord));
  exports.Set("handoverRecvWord", Napi::Function::New(env, HandoverRecvWord));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pidfdStatus", Napi::Function::New(env, PidfdStatus));
  exports.Set("FdWatch", FdWatch::Define(env));
}

}  // namespace bridge
