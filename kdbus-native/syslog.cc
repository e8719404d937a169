// syslog(3) for the control plane: Node has no way to reach /dev/log.
#include <napi.h>
#include <syslog.h>

#include <string>

namespace {

std::string ident;  // openlog keeps the pointer

Napi::Value Log(const Napi::CallbackInfo& info) {
  static const bool opened = [] {
    ident = "kdbus-bridge";
    openlog(ident.c_str(), LOG_PID, LOG_DAEMON);
    return true;
  }();
  (void)opened;
  const std::string level = info[0].As<Napi::String>().Utf8Value();
  // dbus-daemon's severities: security messages (denials) go to the
  // authorization facility.
  const int priority = level == "error"      ? LOG_ERR
                       : level == "warning"  ? LOG_WARNING
                       : level == "security" ? (LOG_AUTH | LOG_NOTICE)
                                             : LOG_INFO;
  syslog(priority, "%s", info[1].As<Napi::String>().Utf8Value().c_str());
  return info.Env().Undefined();
}

}  // namespace

namespace bridge {

void register_syslog(Napi::Env env, Napi::Object exports) { exports.Set("syslog", Napi::Function::New(env, Log)); }

}  // namespace bridge
