#include "sasl.h"

#include <errno.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cookie_keyring.h"
#include "sha1.h"

namespace wire {

namespace {

// dbus-daemon drops a client that buffers more than this without finishing
// the conversation; no legitimate line comes close.
constexpr size_t kMaxBuffer = 16 * 1024;
// REJECTED replies tolerated before the connection is dropped (libdbus).
constexpr int kMaxFailures = 6;
// 128 bits of challenge, as RFC 2831 suggests at least 64.
constexpr size_t kChallengeBytes = 16;

constexpr const char* kCookieContext = "org_freedesktop_general";
constexpr const char* kAllMechanisms[] = {"EXTERNAL", "DBUS_COOKIE_SHA1", "ANONYMOUS"};

constexpr uid_t kNoUid = static_cast<uid_t>(-1);

bool is_blank(char c) { return c == ' ' || c == '\t'; }

size_t find_blank(const std::string& s, size_t from) {
  while (from < s.size() && !is_blank(s[from])) ++from;
  return from;
}

size_t skip_blank(const std::string& s, size_t from) {
  while (from < s.size() && is_blank(s[from])) ++from;
  return from;
}

// libdbus decodes up to the first non-hex character and leaves an odd final
// nibble as a high nibble; the caller checks that everything was consumed.
size_t hex_decode(const std::string& in, std::string& out) {
  out.clear();
  bool high = true;
  size_t i = 0;
  for (; i < in.size(); ++i) {
    char c = in[i];
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      break;
    if (high)
      out += static_cast<char>(v << 4);
    else
      out.back() = static_cast<char>(static_cast<unsigned char>(out.back()) | v);
    high = !high;
  }
  return i;
}

bool is_ascii_line(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c != 0 && !(static_cast<unsigned char>(c) & 0x80); });
}

// Same acceptance as libdbus's strtoul-based check: the whole string must be
// consumed, leading blanks and a sign are tolerated.
bool parse_uid_number(const std::string& s, uid_t& uid) {
  if (s.empty()) return false;
  const char* p = s.c_str();
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(p, &end, 10);
  if (end == p || errno != 0 || static_cast<size_t>(end - p) != s.size()) return false;
  if (v >= static_cast<unsigned long>(kNoUid)) return false;
  uid = static_cast<uid_t>(v);
  return true;
}

bool lookup_user(const std::string& name, uid_t& uid) {
  if (name.empty() || name.find('\0') != std::string::npos) return false;
  struct passwd pw;
  struct passwd* res = nullptr;
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(size > 0 ? static_cast<size_t>(size) : 16384, '\0');
  for (;;) {
    int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || res == nullptr) return false;
    uid = pw.pw_uid;
    return true;
  }
}

std::string home_of_current_user() {
  if (const char* h = getenv("HOME"); h && *h) return h;
  struct passwd pw;
  struct passwd* res = nullptr;
  std::string buf(16384, '\0');
  if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &res) == 0 && res) return pw.pw_dir;
  return {};
}

// libdbus's UTF-8 check for the ANONYMOUS trace string: no NUL, no overlong
// forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    size_t need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (need != len || cp >= 0x110000 || (cp & 0xfffff800) == 0xd800) return false;
    i += len;
  }
  return true;
}

void send_error(std::string& out, const char* message) {
  out += "ERROR \"";
  out += message;
  out += "\"\r\n";
}

void send_data(std::string& out, const std::string& data) {
  if (data.empty()) {
    out += "DATA\r\n";
  } else {
    out += "DATA ";
    out += hex_encode(data);
    out += "\r\n";
  }
}

}  // namespace

SaslServer::SaslServer(const SaslConfig& config, uid_t peer_uid) : config_(config), peer_uid_(peer_uid) {}

bool SaslServer::mech_available(const char* name) const {
  if (!config_.mechanisms.empty() &&
      std::find(config_.mechanisms.begin(), config_.mechanisms.end(), name) == config_.mechanisms.end())
    return false;
  if (std::strcmp(name, "ANONYMOUS") == 0 && !config_.allow_anonymous) return false;
  return true;
}

bool SaslServer::uid_allowed(uid_t uid) const {
  if (config_.authorize_after) return true;
  if (config_.allowed_uids.empty()) return uid == geteuid() || uid == 0;
  return std::find(config_.allowed_uids.begin(), config_.allowed_uids.end(), uid) != config_.allowed_uids.end();
}

size_t SaslServer::feed(const uint8_t* data, size_t len, std::string& out) {
  if (state_ != State::InProgress) return 0;
  size_t used = 0;
  if (!got_nul_) {
    if (len == 0) return 0;
    // The credentials byte: anything but NUL means the peer does not speak
    // D-Bus, and dbus-daemon hangs up without a word.
    if (data[0] != 0) {
      state_ = State::Failed;
      return len;
    }
    got_nul_ = true;
    used = 1;
  }

  const size_t before = in_.size();
  in_.append(reinterpret_cast<const char*>(data) + used, len - used);

  size_t pos = 0;
  while (state_ == State::InProgress) {
    size_t eol = in_.find("\r\n", pos);
    if (eol == std::string::npos) break;
    if (eol + 2 - pos > kMaxBuffer) {
      state_ = State::Failed;
      return len;
    }
    std::string line = in_.substr(pos, eol - pos);
    pos = eol + 2;
    process_line(line, out);
  }

  if (state_ == State::Done) {
    // Everything after BEGIN\r\n is the start of the message stream; the
    // line terminator is necessarily in this chunk since earlier chunks held
    // no complete line.
    size_t consumed = used + (pos - before);
    in_.clear();
    in_.shrink_to_fit();
    return consumed;
  }
  if (state_ == State::Failed) return len;

  in_.erase(0, pos);
  if (in_.size() > kMaxBuffer) state_ = State::Failed;
  return len;
}

void SaslServer::process_line(const std::string& line, std::string& out) {
  if (!is_ascii_line(line)) {
    send_error(out, "Command contained non-ASCII");
    return;
  }
  size_t i = find_blank(line, 0);
  size_t j = skip_blank(line, i);
  const std::string command = line.substr(0, i);
  const std::string args = line.substr(j);

  enum class Cmd { Auth, Cancel, Data, Begin, Error, NegotiateUnixFd, Unknown } cmd = Cmd::Unknown;
  if (command == "AUTH")
    cmd = Cmd::Auth;
  else if (command == "CANCEL")
    cmd = Cmd::Cancel;
  else if (command == "DATA")
    cmd = Cmd::Data;
  else if (command == "BEGIN")
    cmd = Cmd::Begin;
  else if (command == "ERROR")
    cmd = Cmd::Error;
  else if (command == "NEGOTIATE_UNIX_FD")
    cmd = Cmd::NegotiateUnixFd;
  // REJECTED, OK and AGREE_UNIX_FD are client-bound: "Unknown command" here.

  switch (phase_) {
    case Phase::WaitingForAuth:
      switch (cmd) {
        case Cmd::Auth:
          handle_auth(args, out);
          return;
        case Cmd::Cancel:
        case Cmd::Data:
          send_error(out, "Not currently in an auth conversation");
          return;
        case Cmd::Begin:
          state_ = State::Failed;
          return;
        case Cmd::Error:
          send_rejected(out);
          return;
        case Cmd::NegotiateUnixFd:
          send_error(out, "Need to authenticate first");
          return;
        case Cmd::Unknown:
          send_error(out, "Unknown command");
          return;
      }
      return;
    case Phase::WaitingForData:
      switch (cmd) {
        case Cmd::Auth:
          send_error(out, "Sent AUTH while another AUTH in progress");
          return;
        case Cmd::Cancel:
        case Cmd::Error:
          send_rejected(out);
          return;
        case Cmd::Data:
          process_data(args, out);
          return;
        case Cmd::Begin:
          state_ = State::Failed;
          return;
        case Cmd::NegotiateUnixFd:
          send_error(out, "Need to authenticate first");
          return;
        case Cmd::Unknown:
          send_error(out, "Unknown command");
          return;
      }
      return;
    case Phase::WaitingForBegin:
      switch (cmd) {
        case Cmd::Auth:
          send_error(out, "Sent AUTH while expecting BEGIN");
          return;
        case Cmd::Data:
          send_error(out, "Sent DATA while expecting BEGIN");
          return;
        case Cmd::Begin:
          state_ = State::Done;
          return;
        case Cmd::NegotiateUnixFd:
          if (config_.unix_fd_capable) {
            unix_fd_ = true;
            out += "AGREE_UNIX_FD\r\n";
          } else {
            send_error(out, "Unix FD passing not supported, not authenticated or otherwise not possible");
          }
          return;
        case Cmd::Cancel:
        case Cmd::Error:
          send_rejected(out);
          return;
        case Cmd::Unknown:
          send_error(out, "Unknown command");
          return;
      }
      return;
  }
}

void SaslServer::handle_auth(const std::string& args, std::string& out) {
  if (args.empty()) {
    send_rejected(out);
    return;
  }
  size_t i = find_blank(args, 0);
  const std::string name = args.substr(0, i);
  const std::string hex = args.substr(skip_blank(args, i));

  Mech mech = Mech::None;
  if (name == "EXTERNAL")
    mech = Mech::External;
  else if (name == "DBUS_COOKIE_SHA1")
    mech = Mech::CookieSha1;
  else if (name == "ANONYMOUS")
    mech = Mech::Anonymous;
  if (mech == Mech::None || !mech_available(name.c_str())) {
    send_rejected(out);
    return;
  }
  mech_ = mech;
  process_data(hex, out);
}

void SaslServer::process_data(const std::string& hex, std::string& out) {
  std::string data;
  if (hex_decode(hex, data) != hex.size()) {
    send_error(out, "Invalid hex encoding");
    return;
  }
  switch (mech_) {
    case Mech::External:
      external_data(data, out);
      return;
    case Mech::CookieSha1:
      if (cookie_id_ < 0)
        cookie_first(data, out);
      else
        cookie_second(data, out);
      return;
    case Mech::Anonymous:
      anonymous_data(data, out);
      return;
    case Mech::None:
      send_rejected(out);
      return;
  }
}

void SaslServer::external_data(const std::string& data, std::string& out) {
  if (peer_uid_ == kNoUid) {
    // No kernel-verified credentials (TCP): EXTERNAL cannot vouch for anyone.
    send_rejected(out);
    return;
  }
  if (!data.empty()) {
    if (!identity_.empty()) {
      send_rejected(out);
      return;
    }
    identity_ = data;
  }
  if (identity_.empty() && !asked_for_initial_response_) {
    send_data(out, {});
    asked_for_initial_response_ = true;
    phase_ = Phase::WaitingForData;
    return;
  }

  uid_t desired;
  if (identity_.empty()) {
    // The client answered the empty challenge with nothing: it wants to be
    // whoever the socket credentials say.
    desired = peer_uid_;
  } else if (!parse_uid_number(identity_, desired)) {
    send_rejected(out);
    return;
  }
  if (desired != peer_uid_ || !uid_allowed(desired)) {
    send_rejected(out);
    return;
  }
  send_ok(desired, false, out);
}

void SaslServer::cookie_first(const std::string& data, std::string& out) {
  server_challenge_hex_.clear();
  if (!data.empty()) {
    if (!identity_.empty()) {
      send_rejected(out);
      return;
    }
    identity_ = data;
  }
  uid_t desired;
  if (!parse_uid_number(data, desired) && !lookup_user(data, desired)) {
    send_rejected(out);
    return;
  }
  // The keyring lives in the bus user's home: the mechanism can only prove
  // that the client is that user, which we also cross-check against the
  // kernel's view of the peer when there is one.
  if (desired != geteuid() || !uid_allowed(desired) || (peer_uid_ != kNoUid && peer_uid_ != desired)) {
    send_rejected(out);
    return;
  }

  const std::string home = config_.cookie_home.empty() ? home_of_current_user() : config_.cookie_home;
  if (home.empty()) {
    send_rejected(out);
    return;
  }
  CookieKeyring keyring(home, kCookieContext);
  std::string err;
  int32_t id = keyring.best_key(err);
  if (id < 0) {
    send_rejected(out);
    return;
  }
  unsigned char challenge[kChallengeBytes];
  if (!random_bytes(challenge, sizeof challenge)) {
    send_rejected(out);
    return;
  }
  cookie_id_ = id;
  cookie_hex_ = keyring.secret_hex(id);
  desired_uid_ = desired;
  server_challenge_hex_ = hex_encode(std::string_view(reinterpret_cast<const char*>(challenge), sizeof challenge));
  send_data(out, std::string(kCookieContext) + " " + std::to_string(id) + " " + server_challenge_hex_);
  phase_ = Phase::WaitingForData;
}

void SaslServer::cookie_second(const std::string& data, std::string& out) {
  size_t i = find_blank(data, 0);
  if (i == data.size()) {
    send_rejected(out);
    return;
  }
  const std::string client_challenge = data.substr(0, i);
  const std::string client_hash = data.substr(skip_blank(data, i));
  if (client_challenge.empty() || client_hash.empty() || cookie_hex_.empty()) {
    send_rejected(out);
    return;
  }
  const std::string expected = sha1_hex(server_challenge_hex_ + ":" + client_challenge + ":" + cookie_hex_);
  if (client_hash != expected) {
    send_rejected(out);
    return;
  }
  send_ok(desired_uid_, false, out);
}

void SaslServer::anonymous_data(const std::string& data, std::string& out) {
  // The trace string means nothing to us, but libdbus insists it is UTF-8.
  if (!data.empty() && !valid_utf8(data)) {
    send_rejected(out);
    return;
  }
  send_ok(kNoUid, true, out);
}

void SaslServer::shutdown_mech() {
  asked_for_initial_response_ = false;
  identity_.clear();
  cookie_id_ = -1;
  server_challenge_hex_.clear();
  std::fill(cookie_hex_.begin(), cookie_hex_.end(), '\0');
  cookie_hex_.clear();
  desired_uid_ = kNoUid;
  mech_ = Mech::None;
  uid_ = kNoUid;
  anonymous_ = false;
}

void SaslServer::send_rejected(std::string& out) {
  out += "REJECTED";
  for (const char* name : kAllMechanisms) {
    if (!mech_available(name)) continue;
    out += ' ';
    out += name;
  }
  out += "\r\n";
  shutdown_mech();
  if (++failures_ >= kMaxFailures) {
    state_ = State::Failed;
  } else {
    phase_ = Phase::WaitingForAuth;
  }
}

void SaslServer::send_ok(uid_t uid, bool anonymous, std::string& out) {
  out += "OK ";
  out += config_.guid_hex;
  out += "\r\n";
  uid_ = uid;
  anonymous_ = anonymous;
  phase_ = Phase::WaitingForBegin;
}

}  // namespace wire
