#pragma once
// The DBUS_COOKIE_SHA1 keyring: ~/.dbus-keyrings/<context> of the bus user,
// read and extended with the same file format, timeouts and lock-file
// protocol as libdbus so that libdbus clients (which read the file) and other
// servers sharing the home directory interoperate.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "random.h"

namespace wire {

class CookieKeyring {
 public:
  struct Key {
    int32_t id = -1;
    long created = 0;     // unix time
    std::string secret;   // raw bytes
  };

  // Loads the keyring file if it is readable (a missing or unsafe directory
  // just yields an empty keyring, as in libdbus) and makes sure the directory
  // exists with mode 0700.
  CookieKeyring(const std::string& home, std::string_view context);

  // Id of a key young enough for a new challenge; when there is none, a key is
  // added under the lock file and the file rewritten. -1 with err on failure.
  int32_t best_key(std::string& err);

  // Lower-case hex of the secret for id, empty if the keyring lacks it.
  std::string secret_hex(int32_t id) const;

 private:
  bool reload(bool add_new, std::string& err);
  bool lock();
  void unlock();

  std::string dir_;
  std::string file_;
  std::string lock_file_;
  std::vector<Key> keys_;
};

// A context names a file: no dots, slashes, blanks or control line breaks.
bool valid_cookie_context(std::string_view context);

}  // namespace wire
