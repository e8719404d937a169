#pragma once
// The server side of D-Bus SASL, as a byte-fed state machine: no I/O here.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace snap {
class Writer;
class Reader;
}  // namespace snap

namespace wire {

struct SaslConfig {
  std::string guid_hex;               // 32 hex digits, sent in "OK <guid>"
  std::vector<std::string> mechanisms;  // from <auth>; empty = EXTERNAL, DBUS_COOKIE_SHA1 (and ANONYMOUS if allowed)
  bool allow_anonymous = false;       // <allow_anonymous/>
  bool unix_fd_capable = true;        // AF_UNIX transport: NEGOTIATE_UNIX_FD can be agreed
  std::vector<uid_t> allowed_uids;    // EXTERNAL/COOKIE identities accepted; empty = the bus's own uid
  // Accept any authenticated identity: the bus's security policy decides
  // afterwards who may connect (as dbus-daemon authorizes after SASL).
  bool authorize_after = false;
  std::string cookie_home;            // home dir whose ~/.dbus-keyrings holds DBUS_COOKIE_SHA1 keys; empty = $HOME
};

class SaslServer {
 public:
  enum class State { InProgress, Done, Failed };

  // peer_uid: from SO_PEERCRED (or (uid_t)-1 on TCP).
  SaslServer(const SaslConfig& config, uid_t peer_uid);

  // Feeds bytes from the client (the leading NUL byte included). Appends the
  // server's replies to `out`. Returns how many bytes were consumed: once the
  // state is Done, the bytes after "BEGIN\r\n" are not consumed and belong to
  // the message stream. Failed means: close the connection (after writing out).
  size_t feed(const uint8_t* data, size_t len, std::string& out);

  State state() const { return state_; }
  bool unix_fd_negotiated() const { return unix_fd_; }
  bool anonymous() const { return anonymous_; }
  uid_t authorized_uid() const { return uid_; }  // (uid_t)-1 for ANONYMOUS

  // Handover: where the exchange stands (sasl_snapshot.cc). load() goes into
  // a server made with the same configuration.
  void save(snap::Writer& w) const;
  void load(snap::Reader& r);

 private:
  enum class Phase { WaitingForAuth, WaitingForData, WaitingForBegin };
  enum class Mech { None, External, CookieSha1, Anonymous };

  void process_line(const std::string& line, std::string& out);
  void handle_auth(const std::string& args, std::string& out);
  void process_data(const std::string& hex, std::string& out);
  void external_data(const std::string& data, std::string& out);
  void cookie_first(const std::string& data, std::string& out);
  void cookie_second(const std::string& data, std::string& out);
  void anonymous_data(const std::string& data, std::string& out);
  void send_rejected(std::string& out);
  void send_ok(uid_t uid, bool anonymous, std::string& out);
  void shutdown_mech();
  bool mech_available(const char* name) const;
  bool uid_allowed(uid_t uid) const;

  SaslConfig config_;
  uid_t peer_uid_;
  bool got_nul_ = false;
  std::string in_;           // bytes of an incomplete line
  Phase phase_ = Phase::WaitingForAuth;
  Mech mech_ = Mech::None;
  std::string identity_;     // identity the client asked for, raw
  bool asked_for_initial_response_ = false;
  int failures_ = 0;
  int32_t cookie_id_ = -1;   // >= 0 once the cookie challenge was sent
  std::string server_challenge_hex_;
  std::string cookie_hex_;
  uid_t desired_uid_ = static_cast<uid_t>(-1);

  State state_ = State::InProgress;
  bool unix_fd_ = false;
  bool anonymous_ = false;
  uid_t uid_ = static_cast<uid_t>(-1);
};

}  // namespace wire
