#include "cookie_keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace wire {

namespace {

// libdbus's values: a key is offered for 5 minutes and kept 2 more so that a
// client that got the challenge just before rotation can still answer it.
constexpr long kNewKeyTimeout = 60 * 5;
constexpr long kExpireKeysTimeout = kNewKeyTimeout + 60 * 2;
constexpr long kMaxTimeTravel = 60 * 5;
constexpr size_t kMaxKeysInFile = 256;
constexpr int kMaxLockTimeouts = 32;
constexpr int kLockTimeoutMs = 250;
constexpr size_t kKeyLengthBytes = 24;

long now_seconds() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long>(ts.tv_sec);
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Mirrors libdbus's strtol-based integer parse: leading blanks and a sign are
// accepted, at least one digit is required.
bool parse_long(const std::string& s, size_t start, long& val, size_t& end) {
  if (start >= s.size()) return false;
  const char* p = s.c_str() + start;
  char* e = nullptr;
  errno = 0;
  long v = std::strtol(p, &e, 10);
  if (e == p || errno != 0) return false;
  val = v;
  end = start + static_cast<size_t>(e - p);
  return true;
}

size_t skip_blank(const std::string& s, size_t i) {
  while (i < s.size() && is_blank(s[i])) ++i;
  return i;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool private_dir(const std::string& dir, std::string& err) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    err = "Could not stat " + dir;
    return false;
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
    err = dir + " is not a directory owned by this user";
    return false;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    err = "Directory " + dir + " has permissions that are too open";
    return false;
  }
  return true;
}

bool write_file_atomically(const std::string& path, const std::string& contents, std::string& err) {
  std::string tmpl = path + ".XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    err = "Could not create " + tmpl;
    return false;
  }
  fchmod(fd, 0600);
  size_t off = 0;
  bool ok = true;
  while (off < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) ok = false;
  if (!ok || rename(name.data(), path.c_str()) != 0) {
    unlink(name.data());
    err = "Could not write " + path;
    return false;
  }
  return true;
}

}  // namespace

bool valid_cookie_context(std::string_view context) {
  if (context.empty()) return false;
  for (unsigned char c : context) {
    if (c == 0 || c >= 0x80) return false;
    if (c == '/' || c == '\\' || c == '.' || c == ' ' || c == '\t' || c == '\n' || c == '\r') return false;
  }
  return true;
}

CookieKeyring::CookieKeyring(const std::string& home, std::string_view context)
    : dir_(home + "/.dbus-keyrings"),
      file_(dir_ + "/" + std::string(context)),
      lock_file_(file_ + ".lock") {
  std::string ignored;
  reload(false, ignored);
  if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    // Like libdbus, carry on: best_key() will report the real problem.
  }
}

bool CookieKeyring::lock() {
  for (int i = 0; i < kMaxLockTimeouts; ++i) {
    int fd = ::open(lock_file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    usleep(kLockTimeoutMs * 1000);
  }
  // Whoever held it for 8 seconds is assumed dead.
  if (unlink(lock_file_.c_str()) != 0) return false;
  int fd = ::open(lock_file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

void CookieKeyring::unlock() { unlink(lock_file_.c_str()); }

bool CookieKeyring::reload(bool add_new, std::string& err) {
  if (!private_dir(dir_, err)) return false;
  const long now = now_seconds();
  if (add_new && !lock()) {
    err = "Could not lock keyring file to add to it";
    return false;
  }

  std::string contents;
  {
    std::ifstream in(file_, std::ios::binary);
    if (in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      contents = ss.str();
    }
  }
  if (std::any_of(contents.begin(), contents.end(),
                  [](char c) { return c == 0 || static_cast<unsigned char>(c) >= 0x80; }))
    contents.clear();

  std::vector<Key> keys;
  size_t pos = 0;
  while (pos < contents.size()) {
    size_t eol = contents.find('\n', pos);
    std::string line = contents.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    pos = eol == std::string::npos ? contents.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();

    if (keys.size() >= (add_new ? kMaxKeysInFile - 1 : kMaxKeysInFile)) break;
    long id, created;
    size_t next;
    if (!parse_long(line, 0, id, next) || id < 0 || id > INT32_MAX) continue;
    next = skip_blank(line, next);
    if (!parse_long(line, next, created, next)) continue;
    if (created < 0 || now + kMaxTimeTravel < created || now - kExpireKeysTimeout > created) continue;
    next = skip_blank(line, next);
    if (next >= line.size()) continue;
    Key key;
    key.id = static_cast<int32_t>(id);
    key.created = created;
    bool high = true, ok = true;
    for (size_t i = next; i < line.size(); ++i) {
      int v = hex_value(line[i]);
      if (v < 0) {
        ok = false;
        break;
      }
      if (high)
        key.secret += static_cast<char>(v << 4);
      else
        key.secret.back() = static_cast<char>(static_cast<unsigned char>(key.secret.back()) | v);
      high = !high;
    }
    if (ok) keys.push_back(std::move(key));
  }

  bool ok = true;
  if (add_new) {
    Key key;
    for (;;) {
      unsigned char b[4];
      if (!random_bytes(b, sizeof b)) {
        err = "Could not generate random bytes";
        ok = false;
        break;
      }
      int32_t id = static_cast<int32_t>(b[0] | (b[1] << 8) | (b[2] << 16) | ((b[3] & 0x7f) << 24));
      if (std::none_of(keys.begin(), keys.end(), [id](const Key& k) { return k.id == id; })) {
        key.id = id;
        break;
      }
    }
    if (ok) {
      key.secret.resize(kKeyLengthBytes);
      if (!random_bytes(key.secret.data(), key.secret.size())) {
        err = "Could not generate random bytes";
        ok = false;
      }
    }
    if (ok) {
      key.created = now_seconds();
      keys.push_back(std::move(key));
      std::string out;
      for (const Key& k : keys)
        out += std::to_string(k.id) + " " + std::to_string(k.created) + " " + hex_encode(k.secret) + "\n";
      ok = write_file_atomically(file_, out, err);
    }
    unlock();
  }
  if (ok) keys_ = std::move(keys);
  return ok;
}

int32_t CookieKeyring::best_key(std::string& err) {
  auto recent = [this]() -> int32_t {
    const long now = now_seconds();
    for (const Key& k : keys_)
      if (now - kNewKeyTimeout < k.created) return k.id;
    return -1;
  };
  int32_t id = recent();
  if (id >= 0) return id;
  if (!reload(true, err)) return -1;
  id = recent();
  if (id < 0) err = "No recent-enough key found in keyring, and unable to create a new key";
  return id;
}

std::string CookieKeyring::secret_hex(int32_t id) const {
  for (const Key& k : keys_)
    if (k.id == id) return hex_encode(k.secret);
  return {};
}

}  // namespace wire
