// Descriptors the bus inherited from whoever started it (beyond standard
// input, output and error) stay with the bus: dbus-daemon closes them all
// in the services it starts, and Node.js's spawn passes on whatever is not
// close-on-exec. Marking them so once, at start, keeps them out of every
// child; the bus's own later descriptors are close-on-exec already.
#include <dirent.h>
#include <fcntl.h>
#include <napi.h>

#include <cstdlib>

namespace {

Napi::Value CloseInheritedOnExec(const Napi::CallbackInfo& info) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return Napi::Boolean::New(info.Env(), false);
  const int own = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd <= 2 || fd == own) continue;
    const int flags = ::fcntl(static_cast<int>(fd), F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) ::fcntl(static_cast<int>(fd), F_SETFD, flags | FD_CLOEXEC);
  }
  ::closedir(dir);
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

namespace bridge {

void register_inherited(Napi::Env env, Napi::Object exports) {
  exports.Set("closeInheritedOnExec", Napi::Function::New(env, CloseInheritedOnExec));
}

}  // namespace bridge
