#pragma once
// The bus server: listening sockets, the legacy clients (peers) and the
// engine they map onto, on the Node event loop. Everything runs on one
// thread; a Batch marks a unit of work after which queued output is written.
#include <uv.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/bus.h"
#include "engine/pool.h"
#include "poller.h"
#include "wire/address.h"
#include "wire/message.h"
#include "wire/sasl.h"

namespace snap {
class Writer;
class Reader;
}  // namespace snap

namespace bridge {

class Peer;

// Closes a libuv handle (which stops it) and frees it once libuv has let go of it.
template <typename Handle>
void close_handle(std::unique_ptr<Handle> h) {
  if (!h) return;
  uv_close(reinterpret_cast<uv_handle_t*>(h.release()),
           [](uv_handle_t* raw) { std::unique_ptr<Handle> owned(reinterpret_cast<Handle*>(raw)); });
}

// Fills the routing flags, cookies and match view of `msg` from a parsed
// header whose views point into msg.payload (the bytes the message carries).
void describe(const wire::Header& h, kdbus::Message& msg);

// A message addressed to org.freedesktop.DBus, for the driver.
struct DriverCall {
  kdbus::ConnId sender = 0;
  std::string_view sender_name;
  const wire::Header* header = nullptr;
  const uint8_t* data = nullptr;  // the whole message as the client sent it
  size_t len = 0;
  bool unix_fds = false;     // the caller negotiated fd passing
};

class DriverHandler {
 public:
  virtual ~DriverHandler() = default;
  virtual void driver_call(const DriverCall& call) = 0;
};

// Told, once the batch in which it happened is over, that calls wait at an
// activator whose name nobody owns yet: the service needs starting. `first`
// is the call at the head of the activator's queue, still queued.
class ActivationHandler {
 public:
  virtual ~ActivationHandler() = default;
  virtual void activation_needed(const std::string& name, const kdbus::Delivery& first) = 0;
};

// Told each message the security policy refused to its addressed recipient
// (or the bus), with dbus-daemon's "Rejected ..." text, to log it as
// dbus-daemon logs its security messages.
class DenialLog {
 public:
  virtual ~DenialLog() = default;
  virtual void denied(const std::string& text) = 0;
};

// Told the unique name of each monitor whose connection closes while the bus
// runs, to log it as dbus-daemon does ("Monitoring connection :1.N closed.").
class MonitorLog {
 public:
  virtual ~MonitorLog() = default;
  virtual void monitor_closed(const std::string& name) = 0;
};

// dbus-daemon's <limit>s that the server itself enforces (the engine's own
// are in kdbus::BusLimits). 0 = no limit.
struct ServerLimits {
  size_t max_message_size = 0;
  size_t max_message_unix_fds = 0;
  size_t max_completed_connections = 0;
  size_t max_incomplete_connections = 0;
  size_t max_connections_per_user = 0;
  uint64_t reply_timeout_ms = 0;  // 0 = replies may take forever
  uint64_t auth_timeout_ms = 0;   // 0 = a client may take forever to say Hello
  size_t max_incoming_bytes = 0;        // what a sender may have queued in the bus before it is not read
  size_t max_incoming_unix_fds = 0;     // likewise fds; and fds received ahead of the rest of their message
  uint64_t pending_fd_timeout_ms = 0;   // how long such fds may wait for it
  size_t max_incoming_bytes_per_user = 0;     // likewise for all the connections of one uid together
  size_t max_incoming_unix_fds_per_user = 0;
};

struct ServerConfig {
  wire::SaslConfig sasl;
  ServerLimits limits;
  std::string machine_id;  // 32 hex digits, Peer.GetMachineId's answer
};

class Server : public kdbus::QueueListener, public kdbus::AccountListener {
 public:
  Server(uv_loop_t* loop, ServerConfig config, DriverHandler* driver);
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every address of the list; appends the addresses clients use.
  bool listen(std::string_view addresses, std::vector<std::string>& printable, std::string& err);
  // Serves a socket the launcher already listens on (wire::adopt_listener).
  bool adopt(int fd, std::string_view connect_address, std::string& err);

  kdbus::Bus& bus() { return bus_; }
  kdbus::BufferPool& buffers() { return buffers_; }
  // A peer's input buffer, lent while it has bytes to handle: idle
  // connections hold none, and the busy ones pass one buffer around.
  std::vector<uint8_t> borrow_input_buffer(size_t size) {
    if (spare_input_.size() >= size) return std::exchange(spare_input_, {});
    return std::vector<uint8_t>(size);
  }
  void return_input_buffer(std::vector<uint8_t> b) {
    if (b.size() <= kSpareInputMax && b.size() > spare_input_.size()) spare_input_ = std::move(b);
  }
  const ServerConfig& config() const { return config_; }
  void set_limits(const ServerLimits& limits) { config_.limits = limits; }
  // An absolute CLOCK_MONOTONIC deadline for a call sent now, 0 for none.
  uint64_t reply_deadline() const;

  // Sends a message from the bus itself (driver replies and signals): its
  // serial is assigned here. Returns 0 or the engine's errno. `as` is the
  // engine connection that carries it (an activator answering its queue).
  int send_from_bus(std::vector<uint8_t> bytes, std::shared_ptr<kdbus::FdSet> fds = nullptr,
                    kdbus::ConnId as = kdbus::kIdBus);
  // The same for a message the addon's own Writer made from values the bus
  // already checked (names from its registry): not validated again, which
  // for a reply listing thousands of names was a tenth of its cost.
  int send_trusted_from_bus(std::vector<uint8_t> bytes);
  // Sends an error from the bus to `dest` answering its call `reply_serial`.
  void send_error(kdbus::ConnId dest, uint32_t reply_serial, std::string_view name, std::string_view text);

  // BecomeMonitor for client `id` (the driver has already answered it).
  int become_monitor(kdbus::ConnId id, std::vector<kdbus::MatchRule> filter);

  // ByeBye for client `id`: EBUSY while anything waits for it in the bus,
  // in its engine queue or staged for its socket; else Bus::byebye.
  int byebye(kdbus::ConnId id);

  // The Peer of a connected client, null if unknown.
  Peer* peer(kdbus::ConnId id) {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
  }

  // The pidfd of a client's process (null if unknown or not available).
  std::shared_ptr<util::UniqueFd> peer_pidfd(kdbus::ConnId id);

  // Disconnects a client by id (e.g. a second Hello). No-op if unknown.
  void disconnect(kdbus::ConnId id, const char* why);
  // Stops listening and disconnects every client.
  void shutdown();

  uint32_t next_serial();
  // Engine cookies of the match rules clients add (unique on the bus).
  uint64_t next_match_cookie() { return ++match_cookie_; }
  // KDBUS_BRIDGE_DEBUG in the environment: say why clients are disconnected.
  bool debug() const { return debug_; }

  // Activatable names: each is held by an activator connection the server
  // owns, at which calls to the name queue until a real owner takes it.
  void set_activation_handler(ActivationHandler* handler) { activation_ = handler; }
  void set_denial_log(DenialLog* log) { denial_log_ = log; }
  void set_monitor_log(MonitorLog* log) { monitor_log_ = log; }
  void log_denial(const std::string& text) {
    if (denial_log_ != nullptr) denial_log_->denied(text);
  }
  int add_activator(const std::string& name, kdbus::ConnId& out);
  // Drops the activator; calls still queued at it get NoReply.
  int remove_activator(const std::string& name);
  // Answers every call queued at the activator (in order) with an error and
  // empties its queue; `answered` counts the errors sent.
  int fail_activation(const std::string& name, std::string_view error, std::string_view text, size_t& answered);

  // While a Batch is alive, output is queued; when the outermost one ends,
  // every peer with new deliveries writes, and closed peers are released.
  class Batch {
   public:
    explicit Batch(Server& s) : s_(s) { ++s_.batch_depth_; }
    ~Batch() {
      if (--s_.batch_depth_ == 0) s_.flush();
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    Server& s_;
  };

  // Handover (server_snapshot.cc, docs/handover-native.md). freeze() stops
  // every socket watch and timer (no callback fires until thaw()); save()
  // writes a frozen server: listeners, clients, the engine, with fds by
  // index, left open. restore() fills a server that has neither listeners
  // nor clients from such a snapshot, taking duplicates of the fds, and
  // starts its I/O; it throws snap::FormatError and leaves the fds alone
  // when it cannot. abandon(): another server took the sockets over, so
  // this one must not remove socket files when it goes.
  void freeze();
  void thaw();
  bool frozen() const { return frozen_; }
  void save(snap::Writer& w);
  void restore(snap::Reader& sections);
  void abandon();

  // kdbus::QueueListener
  void queue_ready(kdbus::ConnId id, void* owner) override;
  void queue_overflow(kdbus::ConnId id, void* owner) override;
  // kdbus::AccountListener: a user's account drained; its connections are read again.
  void account_drained(kdbus::Account& a) override;

 private:
  friend class Peer;
  struct ListenSocket;

  void watch_poller();
  bool watch(wire::Listener l, std::string& err);
  void on_accept(ListenSocket& ls);
  Peer* accept_one(ListenSocket& ls);
  // Out of fds: refuse who waits, and stop watching listeners that cannot
  // be emptied until an fd is freed.
  void out_of_fds(ListenSocket& ls);
  void resume_listeners();
  // Gives freed heap back to the kernel after a burst (rate-limited).
  void trim_later();
  void release_later();
  // The client sockets' readiness (poller_), and peers that stopped reading
  // before draining their socket so others get a turn (resumed when idle).
  void on_sockets_ready();
  void read_later(Peer* p);
  void on_idle();
 public:
  void fds_pending(Peer& p);
 private:
  int route_from_bus(std::vector<uint8_t> bytes, std::shared_ptr<kdbus::FdSet> fds, kdbus::ConnId as, bool validate);
  // A peer says Hello: empty when it may complete, else why a connection
  // limit forbids it (dbus-daemon's LimitsExceeded text).
  std::string admit(Peer& p, uid_t uid);
  // The account shared by the connections of `uid` (made on first use).
  std::shared_ptr<kdbus::Account> user_account(uid_t uid);
  void release(Peer& p);
  void arm_reply_timer();
  // Once a second while armed: disconnects clients that have not completed
  // Hello within auth_timeout, or hold fds for a message that does not
  // arrive within pending_fd_timeout.
  void arm_sweep();
  void sweep();
  void mark_dirty(Peer* p);
  void peer_closed(Peer* p);
  void flush();

  uv_loop_t* loop_;
  ServerConfig config_;
  DriverHandler* driver_;
  kdbus::Bus bus_;
  // Large message bodies are read into these and sent from them.
  kdbus::BufferPool buffers_{8, 4 * 1024 * 1024, 16 * 1024 * 1024};
  static constexpr size_t kSpareInputMax = 64 * 1024;
  std::vector<uint8_t> spare_input_;
  // Kept open to make room for accepting (and refusing) a client when the
  // process is out of fds.
  util::UniqueFd spare_fd_;
  bool listeners_paused_ = false;
  std::unique_ptr<uv_timer_t> resume_timer_;
  std::unique_ptr<uv_timer_t> trim_timer_;
  std::vector<kdbus::ConnId> overflowed_;
  size_t charged_peak_ = 0;  // the most the accounts held since the last trim
  std::vector<std::unique_ptr<ListenSocket>> listeners_;
  Poller poller_;
  std::unique_ptr<uv_poll_t> poller_watch_;
  std::vector<Peer*> unread_;
  std::unique_ptr<uv_idle_t> unread_idle_;
  std::unordered_map<Peer*, std::unique_ptr<Peer>> peers_;
  std::unordered_map<kdbus::ConnId, Peer*> by_id_;
  std::vector<Peer*> dirty_;
  std::vector<std::unique_ptr<Peer>> dying_;
  std::unique_ptr<uv_check_t> release_check_;
  bool debug_ = std::getenv("KDBUS_BRIDGE_DEBUG") != nullptr;
  int batch_depth_ = 0;
  uint32_t serial_ = 0;
  uint64_t match_cookie_ = 0;
  size_t incomplete_ = 0;
  size_t completed_ = 0;
  std::unordered_map<uid_t, size_t> per_user_;
  std::unordered_map<uid_t, std::weak_ptr<kdbus::Account>> user_accounts_;
  std::unique_ptr<uv_timer_t> reply_timer_;
  std::unique_ptr<uv_timer_t> sweep_timer_;
  ActivationHandler* activation_ = nullptr;
  DenialLog* denial_log_ = nullptr;
  MonitorLog* monitor_log_ = nullptr;
  std::unordered_map<std::string, kdbus::ConnId> activators_;
  std::unordered_map<kdbus::ConnId, std::string> activator_names_;
  std::vector<kdbus::ConnId> activations_due_;
  uint64_t reply_timer_due_ = 0;
  bool frozen_ = false;
};

struct Server::ListenSocket final : Pollable {
  Server* server = nullptr;
  wire::Listener listener;
  void on_events(uint32_t) override {
    if (listener.fd.valid()) server->on_accept(*this);
  }
  bool is_listener() const override { return true; }
};

}  // namespace bridge
