#pragma once
// One legacy D-Bus client: its socket, SASL, framing and validation, and the
// translation between its D-Bus1 messages and its engine connection.
#include <uv.h>

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <memory>
#include <string>
#include <vector>

#include "engine/bus.h"
#include "poller.h"
#include "util/fd.h"
#include "util/fifo.h"
#include "wire/message.h"
#include "wire/sasl.h"

namespace wire {
class FieldAppender;
}  // namespace wire
namespace snap {
class Writer;
class Reader;
}  // namespace snap

namespace bridge {

class Server;

class Peer final : public Pollable, public kdbus::AccountListener {
 public:
  Peer(Server& server, util::UniqueFd fd, bool is_unix);
  ~Peer();
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Reads what the client sent so far; watch() then waits for more.
  void start();
  void watch();
  void on_events(uint32_t events) override;
  // What it queued has drained below max_incoming_bytes: reading resumes.
  void account_drained(kdbus::Account& a) override;
  // Charged with what the bus holds for it: its messages until their last
  // receiver has written them out, and the bus's answers to its calls.
  const std::shared_ptr<kdbus::Account>& account() const { return account_; }
  // Shared by every connection of its user (set at Hello; null for a user
  // without a quota): charged with the same as account().
  const std::shared_ptr<kdbus::Account>& user_account() const { return user_account_; }
  void set_user_account(std::shared_ptr<kdbus::Account> a) { user_account_ = std::move(a); }
  // Moves deliveries from the engine queue into the output queue and writes.
  void pull_and_write();
  // Idempotent; the peer is released by the server after the current batch.
  void close(const std::string& why);

  kdbus::ConnId id() const { return id_; }
  // The connecting process as a pidfd, taken when first asked; null where
  // the kernel has none.
  std::shared_ptr<util::UniqueFd> pidfd();
  const std::string& name() const { return name_; }
  bool closed() const { return closed_; }
  bool dirty = false;
  bool unread = false;  // waits for another turn to read (Server::read_later)
  // What the server counts this peer under, for its connection limits.
  bool counted_incomplete = true;
  bool counted_completed = false;
  uid_t counted_uid = static_cast<uid_t>(-1);
  uint64_t accepted_at_ms = 0;  // loop time when accepted, for auth_timeout
  uint64_t fds_pending_since_ms = 0;  // fds received, their message not yet complete; 0 = none
  // Bytes staged for the socket and not written yet.
  bool has_output() const { return !out_.empty(); }
  size_t pending_output_bytes() const { return out_bytes_; }
  // Bytes read and not handled yet (outside a large message being read).
  size_t pending_input_bytes() const { return in_end_ - in_start_; }
  // org.kdbusbridge.Bus1: the priority of what it sends without a priority
  // field, and whether its queue is read in priority order.
  void set_send_priority(int64_t p) { send_priority_ = p; }
  void set_receive_priority(bool on) { receive_priority_ = on; }
  // What the bus attaches to what this client receives (kdbus::AttachFlags).
  void set_attach_flags(uint64_t f) { attach_flags_ = f; }
  const kdbus::Metadata& metadata() const { return metadata_; }
  // Its process as /proc shows it, read when first asked and kept.
  const kdbus::ProcessFacts& facts();
  // org.kdbusbridge.Bus1.SetDescription: kdbus's connection description
  // (CONN_DESCRIPTION), empty until the client sets one.
  void set_description(std::string d) { description_ = d.empty() ? nullptr : std::make_unique<std::string>(std::move(d)); }
  std::string_view description() const { return description_ ? std::string_view(*description_) : std::string_view(); }
  // Set by BecomeMonitor: from then on the client only listens.
  void become_monitor() { monitor_ = true; }
  bool monitor() const { return monitor_; }

  // Handover (peer_snapshot.cc): the socket's fd, then where the exchange
  // with the client stands, half-read input and unwritten output with their
  // fds included. Loaded into a peer made for a duplicate of the same
  // socket, before it is watched. Loop times are saved as ages.
  void save(snap::Writer& w, uint64_t now_ms) const;
  void load(snap::Reader& r, uint64_t now_ms);
  // Whether anything read is not handled yet (it gets a turn after a load).
  bool has_input() const { return in_start_ < in_end_ || large_.buffer; }
  // The message each staged output was made from (null: the bus's own
  // bytes), so a snapshot carries its sender's charge until it is written.
  std::vector<const kdbus::Message*> staged_messages() const;
  // After a load: the staged output `i` holds `m` (and its charge) until written.
  void keep_staged(size_t i, std::shared_ptr<const kdbus::Message> m);
  size_t staged_count() const { return out_.size(); }

 private:
  enum class State { Auth, AwaitHello, Active };
  struct Out {
    std::shared_ptr<const kdbus::Payload> data;
    std::shared_ptr<kdbus::FdSet> fds;
    // The message `data` was made from (null: the bus's own bytes): the
    // sender is charged until it is written.
    std::shared_ptr<const kdbus::Message> keep;
    size_t offset = 0;  // bytes of data already written
  };
  // A message being read into a buffer of its own: large bodies are sent
  // from where they were read (see prepare). The buffer grows with what
  // arrives, never ahead of it to the announced length.
  struct LargeInput {
    std::shared_ptr<std::vector<uint8_t>> buffer;
    size_t total = 0;  // the message's length
    size_t filled = 0;
  };

  // `hangup`: the peer may have closed, so reading stops only at EOF or EAGAIN.
  void on_readable(bool hangup);
  void prepare_input();
  bool read_once(bool& eof, bool& drained);
  void process_input();
  // Its account is over max_incoming_bytes / max_incoming_unix_fds: input
  // waits (in the socket, and what was read in in_) until it drains.
  bool input_paused();
  // Bytes that have arrived in the socket and are not read yet.
  size_t socket_backlog() const;
  void check_pending_fds();
  void handle_message(const uint8_t* data, size_t len, const std::shared_ptr<std::vector<uint8_t>>& buffer);
  bool take_fds_of_message(const wire::Header& h, size_t len);
  void answer_hello(const wire::Header& h);
  bool answer_list_names(const wire::Header& h);
  bool answer_match(const wire::Header& h, const uint8_t* data);
  bool answer_get_name_owner(const wire::Header& h, const uint8_t* data);
  void reply_unregistered(const wire::Header& h, std::string_view name, std::string_view text);
  std::shared_ptr<kdbus::Message> prepare(const wire::Header& h, const uint8_t* data, size_t len,
                                          const std::shared_ptr<std::vector<uint8_t>>& buffer);
  std::vector<uint8_t> driver_signal(const char* member, std::string_view destination,
                                     std::initializer_list<std::string_view> args);
  void forward(const wire::Header& h, const uint8_t* data, size_t len,
               const std::shared_ptr<std::vector<uint8_t>>& buffer, std::shared_ptr<kdbus::FdSet> fds);
  void send_failed(int err, const wire::Header& h);
  void to_wire(const kdbus::Delivery& d);
  std::shared_ptr<const kdbus::Payload> with_metadata(const kdbus::Message& m);
  // The bus's own facts (timestamp, its credentials) on a message the bus
  // writes for this receiver, when it asked for them.
  void add_bus_metadata(wire::FieldAppender& a, const kdbus::Message& m) const;
  std::vector<uint8_t> with_bus_metadata(std::vector<uint8_t> bytes, const kdbus::Message& m) const;
  static uint32_t wire_serial(const std::vector<uint8_t>& bytes);
  std::vector<uint8_t> access_denied(uint64_t reply_serial, std::string_view destination);
  void push_bytes(std::vector<uint8_t> bytes);
  void write_out();
  void update_poll();

  Server& server_;
  util::UniqueFd fd_;
  bool is_unix_;
  bool registered_ = false;      // in the server's poller
  bool watch_writable_ = false;  // writability edges asked for
  State state_ = State::Auth;
  // Only while authenticating; what the bus needs of it later is kept below.
  std::unique_ptr<wire::SaslServer> sasl_;
  bool unix_fd_negotiated_ = false;
  uid_t authorized_uid_ = static_cast<uid_t>(-1);
  kdbus::Metadata metadata_;
  std::shared_ptr<util::UniqueFd> pidfd_;
  bool pidfd_asked_ = false;
  kdbus::ConnId id_ = 0;
  std::string name_;
  bool closed_ = false;
  bool monitor_ = false;
  int64_t send_priority_ = 0;
  uint64_t attach_flags_ = 0;
  std::unique_ptr<kdbus::ProcessFacts> facts_;
  std::unique_ptr<std::string> description_;  // most connections never set one
  bool receive_priority_ = false;

  std::shared_ptr<kdbus::Account> account_ = std::make_shared<kdbus::Account>();
  std::shared_ptr<kdbus::Account> user_account_;
  int budget_ = 0;  // messages this peer may still have handled in this turn
  // Borrowed from the server while bytes are pending, returned when drained.
  std::vector<uint8_t> in_;
  size_t in_start_ = 0, in_end_ = 0;
  LargeInput large_;  // buffer set while a large message is being read
  util::Fifo<util::UniqueFd> in_fds_;
  // An fd belongs to the message whose bytes it arrived with: for each
  // read that brought fds, how far into the stream it reached and how many
  // fds it brought (in in_fds_ order). in_bytes_: bytes read so far.
  struct FdArrival {
    uint64_t at;
    size_t count;
  };
  util::Fifo<FdArrival> fd_arrivals_;
  uint64_t in_bytes_ = 0;
  util::Fifo<Out> out_;
  size_t out_bytes_ = 0;  // total size of what out_ holds
};

}  // namespace bridge
