#include "peer.h"
#include "undirected.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <deque>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

#include "engine/match.h"
#include "server.h"
#include "wire/bus1_fields.h"
#include "wire/fields.h"
#include "wire/validate.h"

namespace bridge {
namespace {

constexpr const char* kBusName = "org.freedesktop.DBus";
constexpr const char* kBusPath = "/org/freedesktop/DBus";
constexpr size_t kIdleBuffer = 4 * 1024;  // what an idle connection keeps for input
// A message at least this long that is not read completely yet is read into a
// buffer of its own, and its body goes out from there.
constexpr size_t kLargeMessage = 16 * 1024;
constexpr int kReadsPerWakeup = 16;
// What one client gets done per turn of the loop before the others get
// theirs; a call to the driver (answered in TypeScript) costs more.
constexpr int kMessagesPerTurn = 256;
constexpr int kDriverCallCost = 16;
constexpr size_t kMaxFdsPerRead = 253;  // SCM_MAX_FD
constexpr int kMaxIov = 64;
constexpr size_t kOutWindow = 256 * 1024;  // bytes staged for the socket beyond the engine queue

// What the security policy looks at in a message, straight from its header.
kdbus::PolicyMessage policy_message(const wire::Header& h) {
  kdbus::PolicyMessage m;
  m.type = static_cast<uint8_t>(h.type);
  m.path = h.path;
  m.interface = h.interface;
  m.member = h.member;
  m.error_name = h.error_name;
  m.destination = h.destination;
  m.is_reply = h.has_reply_serial;
  m.broadcast = h.type == wire::MsgType::Signal && !h.has_destination;
  m.n_fds = h.unix_fds;
  return m;
}

}  // namespace

Peer::Peer(Server& server, util::UniqueFd fd, bool is_unix)
    : server_(server), fd_(std::move(fd)), is_unix_(is_unix) {
  account_->set_listener(this);
  uid_t peer_uid = static_cast<uid_t>(-1);
  if (is_unix_) {
    metadata_ = kdbus::capture_peer_metadata(fd_.get());
    if (metadata_.has_creds) peer_uid = metadata_.uid;
  }
  wire::SaslConfig sasl = server_.config().sasl;
  sasl.unix_fd_capable = is_unix_;
  sasl_ = std::make_unique<wire::SaslServer>(sasl, peer_uid);
}

// The socket leaves the poller when the Peer closes it, on destruction.
// Messages it sent may outlive it, and with them charges to its account.
Peer::~Peer() { account_->set_listener(nullptr); }

std::shared_ptr<util::UniqueFd> Peer::pidfd() {
  if (!pidfd_asked_ && is_unix_ && !closed_) {
    pidfd_asked_ = true;
    pidfd_ = kdbus::capture_pidfd(fd_.get());
  }
  return pidfd_;
}

// Clients speak first, and most have by the time they are accepted: read
// before waiting. Registering after the read reports only what is new.
void Peer::start() { on_readable(false); }

void Peer::watch() {
  if (closed_ || registered_) return;
  Server::Batch batch(server_);
  if (int err = server_.poller_.add(fd_.get(), this, !out_.empty())) {
    close(std::string("cannot watch the socket: ") + std::strerror(err));
    return;
  }
  registered_ = true;
  watch_writable_ = !out_.empty();
}

// Only a socket that filled up once watches for writability; the poller's
// edges need no re-arming after that.
void Peer::update_poll() {
  if (closed_ || !registered_ || watch_writable_ || out_.empty()) return;
  if (int err = server_.poller_.watch_writable(fd_.get(), this)) {
    close(std::string("cannot watch the socket: ") + std::strerror(err));
    return;
  }
  watch_writable_ = true;
}

void Peer::on_events(uint32_t events) {
  if (closed_) return;
  Server::Batch batch(server_);
  if (events & EPOLLOUT) pull_and_write();
  if (!closed_ && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    on_readable(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
}

void Peer::account_drained(kdbus::Account&) {
  // Called wherever the last charge went (another peer's write, a
  // disconnect): only note that this peer wants a turn.
  if (!closed_) server_.read_later(this);
}

size_t Peer::socket_backlog() const {
  int queued = 0;
  if (::ioctl(fd_.get(), FIONREAD, &queued) != 0 || queued < 0) return 0;
  return static_cast<size_t>(queued);
}

bool Peer::input_paused() {
  if (state_ != State::Active) return false;
  const ServerLimits& l = server_.config().limits;
  if (account_->over(l.max_incoming_bytes, l.max_incoming_unix_fds)) return true;
  // The server wakes every connection of the user once its account drains.
  return user_account_ && user_account_->over(l.max_incoming_bytes_per_user, l.max_incoming_unix_fds_per_user);
}

// Edge-triggered: the socket is read until it is empty, or for a bounded
// number of reads after which the peer waits for another turn. A peer over
// its account is not read at all until what it queued drains (the socket
// keeps the rest, and its sender blocks), as dbus-daemon does.
void Peer::on_readable(bool hangup) {
  budget_ = kMessagesPerTurn;
  if (in_start_ < in_end_) process_input();  // left over from the last turn
  for (int i = 0; i < kReadsPerWakeup && !closed_; ++i) {
    if (budget_ <= 0) break;
    if (input_paused()) return;
    bool eof = false, drained = false;
    bool got = read_once(eof, drained);
    if (got) process_input();
    if (!closed_) check_pending_fds();
    if (eof) {
      close("connection closed by peer");
      return;
    }
    // What was read and not handled yet gets the next turn: no edge will
    // come for it.
    if (budget_ <= 0) break;
    // A hang-up reported with this edge stays unseen unless read to the end.
    if (!got || (drained && !hangup)) {
      // A burst is over: an idle connection keeps only a small input buffer.
      if (in_start_ == in_end_) server_.return_input_buffer(std::exchange(in_, {}));
      return;
    }
  }
  if (!closed_) server_.read_later(this);
}

// Room to read into at the end of in_.
void Peer::prepare_input() {
  // in_ only grows to hold messages shorter than kLargeMessage.
  if (in_start_ == in_end_) in_start_ = in_end_ = 0;
  if (in_.empty()) in_ = server_.borrow_input_buffer(kIdleBuffer);
  if (in_.size() - in_end_ < kIdleBuffer / 2) {
    if (in_start_ > 0) {
      std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    if (in_.size() - in_end_ < kIdleBuffer / 2) in_.resize(std::max(in_.size() * 2, in_end_ + kIdleBuffer));
  }
}

// `drained`: the socket had nothing more when read. A short read of an
// AF_UNIX stream socket says so unless it stopped at the end of a message
// that carried fds (any control message: assume more may wait).
bool Peer::read_once(bool& eof, bool& drained) {
  struct iovec iov;
  if (large_.buffer) {
    // Only this message's bytes: what follows it goes to in_ as usual. The
    // buffer doubles when full, so it holds at most twice what arrived.
    std::vector<uint8_t>& b = *large_.buffer;
    if (large_.filled == b.size()) {
      // Exactly that much (resize alone may double the capacity again): at
      // least what already waits in the socket, at most the message.
      const size_t grown = std::min(large_.total, std::max(b.size() * 2, large_.filled + socket_backlog()));
      b.reserve(grown);
      b.resize(grown);
    }
    iov = {b.data() + large_.filled, std::min(b.size(), large_.total) - large_.filled};
  } else {
    prepare_input();
    iov = {in_.data() + in_end_, in_.size() - in_end_};
  }
  // Room for credentials too, should the socket come with SO_PASSCRED set.
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead) + CMSG_SPACE(sizeof(struct ucred))];
  struct msghdr mh {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (is_unix_) {
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
  }
  ssize_t n;
  do {
    n = ::recvmsg(fd_.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) eof = true;
    return false;
  }
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      in_fds_.emplace_back(fd);
    }
    if (count > 0) fd_arrivals_.push_back({in_bytes_ + static_cast<uint64_t>(n), count});
  }
  in_bytes_ += static_cast<uint64_t>(n);
  if (mh.msg_flags & MSG_CTRUNC) {
    close("too many file descriptors in one read");
    return false;
  }
  if (n == 0) {
    eof = true;
    return false;
  }
  drained = is_unix_ && mh.msg_controllen == 0 && static_cast<size_t>(n) < iov.iov_len;
  if (large_.buffer) {
    large_.filled += static_cast<size_t>(n);
  } else {
    in_end_ += static_cast<size_t>(n);
  }
  return true;
}

// Fds that arrived ahead of the rest of their message wait in in_fds_:
// bounded in number (max_incoming_unix_fds) and in time (pending_fd_timeout).
void Peer::check_pending_fds() {
  if (in_fds_.empty()) {
    fds_pending_since_ms = 0;
    return;
  }
  const ServerLimits& limits = server_.config().limits;
  if (limits.max_incoming_unix_fds != 0 && in_fds_.size() > limits.max_incoming_unix_fds) {
    close("more file descriptors pending than max_incoming_unix_fds");
    return;
  }
  // As in dbus-daemon, root is trusted not to pin fds in the bus.
  if (fds_pending_since_ms == 0 && !(metadata_.has_creds && metadata_.uid == 0)) {
    fds_pending_since_ms = uv_now(server_.loop_);
    server_.fds_pending(*this);
  }
}

void Peer::process_input() {
  if (large_.buffer) {
    if (large_.filled < large_.total) return;
    LargeInput done = std::exchange(large_, LargeInput{});
    handle_message(done.buffer->data(), done.total, done.buffer);
  }
  while (!closed_ && in_start_ < in_end_) {
    if (state_ == State::Active && (budget_ <= 0 || input_paused())) return;
    const uint8_t* data = in_.data() + in_start_;
    size_t avail = in_end_ - in_start_;
    if (state_ == State::Auth) {
      std::string reply;
      size_t used = sasl_->feed(data, avail, reply);
      in_start_ += used;
      if (!reply.empty()) push_bytes(std::vector<uint8_t>(reply.begin(), reply.end()));
      if (sasl_->state() == wire::SaslServer::State::Failed) {
        write_out();
        close("authentication failed");
        return;
      }
      if (sasl_->state() == wire::SaslServer::State::InProgress) {
        if (used > 0) continue;  // more lines may be buffered behind this one
        write_out();
        return;
      }
      state_ = State::AwaitHello;
      unix_fd_negotiated_ = sasl_->unix_fd_negotiated();
      authorized_uid_ = sasl_->authorized_uid();
      sasl_.reset();
      if (!server_.bus().can_connect(metadata_)) {
        close("the security policy does not allow this user to connect");
        return;
      }
      continue;
    }
    size_t total = 0;
    std::string err;
    switch (wire::frame_length(data, avail, total, err)) {
      case wire::Frame::Invalid:
        close("invalid message framing: " + err);
        return;
      case wire::Frame::NeedMore:
        return;
      case wire::Frame::Ok:
        break;
    }
    const ServerLimits& limits = server_.config().limits;
    if (limits.max_message_size != 0 && total > limits.max_message_size) {
      close("message larger than max_message_size");
      return;
    }
    if (avail < total) {
      if (total >= kLargeMessage) {
        // An idle pooled buffer is memory the bus holds already; a new one
        // holds what has arrived, in our buffer and in the socket.
        large_.buffer =
            server_.buffers().take(total, std::min(total, std::max({2 * avail, avail + socket_backlog(), kIdleBuffer})));
        large_.total = total;
        large_.filled = avail;
        std::memcpy(large_.buffer->data(), data, avail);
        in_start_ = in_end_ = 0;
        // A client that stalls inside a large message holds one buffer, not two.
        std::vector<uint8_t>().swap(in_);
        return;
      }
      // The rest goes behind it (prepare_input grows in_ as it arrives).
      if (in_start_ > 0) {
        std::memmove(in_.data(), data, avail);
        in_start_ = 0;
        in_end_ = avail;
      }
      return;
    }
    in_start_ += total;
    --budget_;
    handle_message(data, total, nullptr);
  }
}

// `buffer` is what data points into when the message has a buffer of its own.
void Peer::handle_message(const uint8_t* data, size_t len, const std::shared_ptr<std::vector<uint8_t>>& buffer) {
  wire::Header h;
  std::string err;
  if (!wire::parse_message(data, len, h, err)) {
    close("invalid message: " + err);
    return;
  }
  std::shared_ptr<kdbus::FdSet> fds;
  const size_t max_fds = server_.config().limits.max_message_unix_fds;
  if (max_fds != 0 && h.unix_fds > max_fds) {
    close("message carries more file descriptors than max_message_unix_fds");
    return;
  }
  if (!take_fds_of_message(h, len)) return;
  if (h.unix_fds > 0) {
    fds = std::make_shared<kdbus::FdSet>();
    fds->fds.reserve(h.unix_fds);
    for (uint32_t i = 0; i < h.unix_fds; ++i) {
      fds->fds.push_back(std::move(in_fds_.front()));
      in_fds_.pop_front();
    }
  } else if (!in_fds_.empty() && !unix_fd_negotiated_) {
    close("file descriptors sent without negotiating them");
    return;
  }

  if (monitor_) {
    close("monitors may not send messages");
    return;
  }
  const bool to_driver = h.has_destination && h.destination == kBusName;
  const bool registering = state_ == State::AwaitHello;
  if (registering) {
    if (!to_driver) {
      close("client tried to send a message other than Hello without being registered");
      return;
    }
    if (h.type != wire::MsgType::MethodCall || h.member != "Hello" || (h.has_interface && h.interface != kBusName)) {
      // As dbus-daemon: the driver refuses, the connection stays.
      reply_unregistered(h, "org.freedesktop.DBus.Error.AccessDenied",
                         "Client tried to send a message other than Hello without being registered");
      return;
    }
    const std::string refused = server_.admit(*this, authorized_uid_);
    if (!refused.empty()) {
      // As dbus-daemon: Hello fails, the connection stays unregistered.
      reply_unregistered(h, "org.freedesktop.DBus.Error.LimitsExceeded", refused);
      return;
    }
    kdbus::HelloParams hp;
    hp.flags = unix_fd_negotiated_ ? uint64_t{kdbus::kHelloAcceptFd} : uint64_t{0};
    hp.metadata = metadata_;
    hp.owner = this;
    hp.defer_announce = true;  // announced after the answer to Hello, as dbus-daemon orders it
    int rc = server_.bus().hello(std::move(hp), id_);
    if (rc != 0) {
      close("bus refused the connection");
      return;
    }
    name_ = kdbus::unique_name(id_);
    server_.by_id_[id_] = this;
    state_ = State::Active;
  }
  if (h.type > wire::MsgType::Signal) {
    // As dbus-daemon: a type this protocol version does not know is refused
    // (even when no reply is expected) once its destination is found, and
    // dropped when it names none.
    if (!h.has_destination) return;
    kdbus::ConnId owner = 0;
    if (!to_driver && server_.bus().name_owner(h.destination, owner) != 0) {
      send_failed(ESRCH, h);
      return;
    }
    server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.AccessDenied",
                       "Message bus will not accept messages of unknown type\n");
    return;
  }
  if (to_driver) {
    std::shared_ptr<kdbus::Message> seen;
    if (server_.bus().has_monitors()) {
      // Calls the bus consumes still take their place in the order monitors see.
      seen = prepare(h, data, len, buffer);
      seen->dst_id = kdbus::kIdBus;
      // What a signal to the bus sets off (an activation failure's errors)
      // is answered on its own, so dbus-daemon's monitors see it first.
      if (h.type != wire::MsgType::Signal || registering) server_.bus().observe(id_, std::move(seen));
    }
    if (registering) {
      answer_hello(h);
      return;
    }
    if (server_.bus().check_send_to_bus(id_, policy_message(h)) == EACCES) {
      if (seen) server_.bus().observe(id_, std::move(seen));
      send_failed(EACCES, h);
      return;
    }
    budget_ -= kDriverCallCost;
    if (answer_list_names(h) || answer_match(h, data) || answer_get_name_owner(h, data)) return;
    DriverCall call;
    call.sender = id_;
    call.sender_name = name_;
    call.header = &h;
    call.data = data;
    call.len = len;
    call.unix_fds = unix_fd_negotiated_;
    server_.driver_->driver_call(call);
    if (seen) server_.bus().observe(id_, std::move(seen));
    return;
  }
  forward(h, data, len, buffer, std::move(fds));
}

// The fds a message may carry are those that arrived with its own bytes,
// exactly as many as it declares: fds that came with an earlier message's
// bytes, more than declared, or fewer, end the connection (as dbus-broker;
// dbus-daemon hands leftover fds to whichever later message declares some).
// On success the arrivals of this message's fds are forgotten; the fds
// themselves are at the front of in_fds_.
bool Peer::take_fds_of_message(const wire::Header& h, size_t len) {
  if (h.unix_fds > 0 && !unix_fd_negotiated_) {
    close("message announces file descriptors that were not negotiated");
    return false;
  }
  // handle_message runs once the message's last byte is consumed.
  const uint64_t end = in_bytes_ - (in_end_ - in_start_);
  const uint64_t start = end - len;
  size_t earlier = 0, with = 0, arrivals = 0;
  for (const FdArrival& a : fd_arrivals_) {
    if (a.at > end) break;
    (a.at <= start ? earlier : with) += a.count;
    ++arrivals;
  }
  if (earlier > 0) {
    close("file descriptors sent with a message that did not declare them");
    return false;
  }
  if (with != h.unix_fds) {
    close(with > h.unix_fds ? "message carries more file descriptors than it declares"
                            : "message announces file descriptors that did not arrive with it");
    return false;
  }
  fd_arrivals_.pop_front(arrivals);
  return true;
}

// An error to a client that has no engine connection yet, written directly.
void Peer::reply_unregistered(const wire::Header& h, std::string_view name, std::string_view text) {
  if (h.type != wire::MsgType::MethodCall || (h.flags & wire::kNoReplyExpected)) return;
  wire::Writer w(wire::MsgType::Error, server_.next_serial(), wire::kNoReplyExpected);
  w.error_name(name).reply_serial(h.serial).sender(kBusName).add_string(text);
  push_bytes(w.finish());
}

// Hello is part of setting up a connection, so it is answered here rather
// than in the driver: the reply, NameOwnerChanged, then NameAcquired.
void Peer::answer_hello(const wire::Header& h) {
  if (!(h.flags & wire::kNoReplyExpected)) {
    wire::Writer w(wire::MsgType::MethodReturn, 1, wire::kNoReplyExpected);
    w.reply_serial(h.serial).destination(name_).sender(kBusName).add_string(name_);
    server_.send_from_bus(w.finish());
  }
  server_.bus().announce(id_);
  server_.send_from_bus(driver_signal("NameAcquired", name_, {name_}));
}

namespace {

// A method call to the bus's own interface (or to none, which the driver
// resolves to it) with this member and signature: one the addon answers.
bool bus_method(const wire::Header& h, std::string_view member, std::string_view signature) {
  return h.type == wire::MsgType::MethodCall && h.member == member && h.signature == signature &&
         (!h.has_interface || h.interface == kBusName);
}

// The first argument of a call whose signature starts with a string: the
// body was validated with the message.
std::string_view string_arg(const wire::Header& h, const uint8_t* data) {
  const uint8_t* body = data + h.body_offset;
  return std::string_view(reinterpret_cast<const char*>(body + 4), wire::detail::load_u32(body, h.big_endian));
}

}  // namespace

// ListNames is answered here: with thousands of names, building and
// marshalling the reply in JavaScript cost more than the rest of the call.
// Same reply as the driver's: the bus's name, then what the registry lists.
// Other shapes of the call (arguments, another interface) go to the driver.
bool Peer::answer_list_names(const wire::Header& h) {
  if (!bus_method(h, "ListNames", "")) return false;
  // Views into the registry, and unique names made once each (a deque
  // keeps them where the views point).
  std::deque<std::string> uniques;
  std::vector<std::string_view> names{kBusName};
  server_.bus().visit_names(kdbus::kListUnique | kdbus::kListNames, [&](std::string_view name, kdbus::ConnId id, uint64_t) {
    names.push_back(name.empty() ? std::string_view(uniques.emplace_back(kdbus::unique_name(id))) : name);
  });
  // As dbus-daemon, NO_REPLY_EXPECTED spares only empty replies.
  wire::Writer w(wire::MsgType::MethodReturn, 1, wire::kNoReplyExpected);
  w.reply_serial(h.serial).destination(name_).sender(kBusName).add_string_array(names);
  server_.send_trusted_from_bus(w.finish());
  return true;
}

// GetNameOwner is answered here: clients ask it all the time (GDBus and
// sd-bus before a call to a well-known name), and through JavaScript it cost
// more than the lookup. As dbus-daemon, the name is not validated: one that
// is not owned, valid or not, has no owner.
bool Peer::answer_get_name_owner(const wire::Header& h, const uint8_t* data) {
  if (!bus_method(h, "GetNameOwner", "s")) return false;
  const std::string_view name = string_arg(h, data);
  std::string owner;
  kdbus::ConnId id = 0;
  if (name == kBusName) {
    owner = kBusName;
  } else if (server_.bus().name_owner(name, id) == 0) {
    owner = kdbus::unique_name(id);
  } else {
    server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.NameHasNoOwner",
                       "Could not get owner of name '" + std::string(name) + "': no such name");
    return true;
  }
  // A reply with a value is sent even under NO_REPLY_EXPECTED, as dbus-daemon does.
  wire::Writer w(wire::MsgType::MethodReturn, 1, wire::kNoReplyExpected);
  w.reply_serial(h.serial).destination(name_).sender(kBusName).add_string(owner);
  server_.send_trusted_from_bus(w.finish());
  return true;
}

// AddMatch and RemoveMatch are answered here: a client sets up its rules
// in bursts (thousands at start-up), and going through JavaScript for each
// cost time and memory that stayed (compiled code, a grown heap). Other
// shapes of the calls (another signature or interface) go to the driver.
bool Peer::answer_match(const wire::Header& h, const uint8_t* data) {
  const bool add = bus_method(h, "AddMatch", "s");
  if (!add && !bus_method(h, "RemoveMatch", "s")) return false;
  const std::string_view text = string_arg(h, data);
  kdbus::MatchRule rule;
  std::string err;
  if (!kdbus::MatchRule::parse(text, rule, err)) {
    server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.MatchRuleInvalid", err);
    return true;
  }
  kdbus::Bus& bus = server_.bus();
  if (add) {
    const int rc = bus.match_add(id_, server_.next_match_cookie(), std::move(rule));
    if (rc == EMFILE) {
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.LimitsExceeded",
                         "Connection \"" + name_ +
                             "\" is not allowed to add more match rules (increase limits in configuration file if required)");
      return true;
    }
    if (rc != 0) {
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.MatchRuleInvalid", std::strerror(rc));
      return true;
    }
  } else {
    uint64_t cookie = 0;
    if (bus.match_find(id_, rule, cookie) != 0) {
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.MatchRuleNotFound",
                         "The given match rule wasn't found and can't be removed");
      return true;
    }
    bus.match_remove(id_, cookie);
  }
  // As dbus-daemon, NO_REPLY_EXPECTED spares the empty reply (not an error).
  if (!(h.flags & wire::kNoReplyExpected)) {
    wire::Writer w(wire::MsgType::MethodReturn, 1, wire::kNoReplyExpected);
    w.reply_serial(h.serial).destination(name_).sender(kBusName);
    server_.send_from_bus(w.finish());
  }
  return true;
}

// The message as receivers get it: the bus's header (with SENDER), then the
// body, copied behind it when small, referred to where it was read when the
// message has a buffer of its own.
std::shared_ptr<kdbus::Message> Peer::prepare(const wire::Header& h, const uint8_t* data, size_t len,
                                              const std::shared_ptr<std::vector<uint8_t>>& buffer) {
  auto msg = std::make_shared<kdbus::Message>();
  kdbus::Payload& p = msg->payload;
  const size_t body_len = len - h.body_offset;
  p.head.reserve(h.body_offset + name_.size() + 16 + (buffer ? 0 : body_len));
  wire::write_forward_header(h, name_, p.head);
  if (buffer) {
    p.body_buffer = buffer;
    p.body = data + h.body_offset;
    p.body_len = body_len;
  } else {
    p.head.insert(p.head.end(), data + h.body_offset, data + len);
  }
  wire::Header out;
  wire::read_trusted_fields(p.head.data(), p.head.size(), out);
  describe(out, *msg);
  return msg;
}

void Peer::forward(const wire::Header& h, const uint8_t* data, size_t len,
                   const std::shared_ptr<std::vector<uint8_t>>& buffer, std::shared_ptr<kdbus::FdSet> fds) {
  auto msg = prepare(h, data, len, buffer);
  msg->priority = h.has_priority ? h.priority : send_priority_;
  msg->fds = std::move(fds);
  msg->charge = kdbus::Charge(account_, user_account_, msg->payload.size(), msg->fds ? msg->fds->fds.size() : 0);
  if (msg->flags & kdbus::kMsgExpectReply) msg->timeout_ns = server_.reply_deadline();
  if (!h.has_destination) {
    if (h.type == wire::MsgType::MethodCall) {
      push_bytes(answer_undirected_call(h, server_.next_serial(), server_.config().machine_id));
      return;
    }
    if (h.type != wire::MsgType::Signal) return;  // nobody to deliver a reply without destination to
    msg->dst_id = kdbus::kDstBroadcast;
  } else if (h.destination[0] == ':') {
    if (!kdbus::parse_unique_name(h.destination, msg->dst_id)) {
      send_failed(ENXIO, h);
      return;
    }
  } else {
    msg->dst_id = kdbus::kDstName;
    msg->dst_name = std::string(h.destination);
  }
  int rc = server_.bus().send(id_, msg);
  if (rc != 0) {
    // Monitors see a call the bus refused, then the bus's error.
    if (server_.bus().has_monitors()) server_.bus().observe(id_, std::move(msg));
    send_failed(rc, h);
  }
}

void Peer::send_failed(int err, const wire::Header& h) {
  const bool wants_reply = h.type == wire::MsgType::MethodCall && !(h.flags & wire::kNoReplyExpected);
  // A refusal by the security policy and a destination nobody owns are
  // always reported, whatever the message, as dbus-daemon does, and so is a
  // message the receiver's full queue cannot take (LimitsExceeded): nothing
  // is dropped in silence. Other failures only to a caller waiting.
  const bool no_owner = err == ENXIO || err == ESRCH || err == EADDRNOTAVAIL;
  if (!wants_reply && err != EACCES && !no_owner && err != ENOBUFS && err != EXFULL) return;
  std::string dest(h.destination);
  switch (err) {
    case ENXIO:
    case ESRCH:
    case EADDRNOTAVAIL:
      // Without auto-start nothing is looked up in the service files.
      if (h.flags & wire::kNoAutoStart) {
        server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.NameHasNoOwner",
                           "Name \"" + dest + "\" does not exist");
        break;
      }
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.ServiceUnknown",
                         "The name " + dest + " was not provided by any .service files");
      break;
    case EMLINK:
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.LimitsExceeded",
                         "The maximum number of pending replies per connection has been reached");
      break;
    case ENOBUFS:
    case EXFULL:
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.LimitsExceeded",
                         "The destination's incoming queue is full");
      break;
    case ECOMM:
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.NotSupported",
                         "The destination does not accept file descriptors");
      break;
    case EPERM:
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.AccessDenied",
                         "The message was rejected by the bus");
      break;
    case EACCES: {
      const std::string text = server_.bus().denial_text(id_, policy_message(h));
      server_.log_denial(text);
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.AccessDenied", text);
      break;
    }
    default:
      server_.send_error(id_, h.serial, "org.freedesktop.DBus.Error.Failed",
                         std::string("Could not deliver the message: ") + std::strerror(err));
      break;
  }
}

void Peer::push_bytes(std::vector<uint8_t> bytes) {
  auto p = std::make_shared<kdbus::Payload>();
  p->head = std::move(bytes);
  Out o;
  o.data = std::move(p);
  out_bytes_ += o.data->size();
  out_.push_back(std::move(o));
  server_.mark_dirty(this);
}

std::vector<uint8_t> Peer::driver_signal(const char* member, std::string_view destination,
                                         std::initializer_list<std::string_view> args) {
  wire::Writer w(wire::MsgType::Signal, server_.next_serial(), wire::kNoReplyExpected);
  w.path(kBusPath).interface(kBusName).member(member).sender(kBusName);
  if (!destination.empty()) w.destination(destination);
  for (std::string_view a : args) w.add_string(a);
  return w.finish();
}

uint32_t Peer::wire_serial(const std::vector<uint8_t>& bytes) {
  uint32_t serial = 0;
  std::memcpy(&serial, bytes.data() + 8, 4);
  return bytes[0] == 'B' ? __builtin_bswap32(serial) : serial;
}

// What monitors see where the policy refused a message: the AccessDenied
// error answering it, to its sender (empty: the bus itself).
std::vector<uint8_t> Peer::access_denied(uint64_t reply_serial, std::string_view destination) {
  wire::Writer w(wire::MsgType::Error, server_.next_serial(), wire::kNoReplyExpected);
  w.error_name("org.freedesktop.DBus.Error.AccessDenied")
      .reply_serial(static_cast<uint32_t>(reply_serial))
      .sender(kBusName)
      .destination(destination.empty() ? std::string_view(kBusName) : destination);
  w.add_string("The message was rejected by the security policy");
  return w.finish();
}

void Peer::to_wire(const kdbus::Delivery& d) {
  const kdbus::Message& m = *d.msg;
  const kdbus::Notification& n = m.notify;
  using kdbus::NotifyKind;
  switch (n.kind) {
    case NotifyKind::None: {
      Out o;
      if (attach_flags_ != 0) {
        o.data = with_metadata(m);
      } else {
        o.data = std::shared_ptr<const kdbus::Payload>(d.msg, &m.payload);  // shares the message
      }
      o.keep = d.msg;  // and names it, for a snapshot
      o.fds = m.fds;
      out_bytes_ += o.data->size();
      out_.push_back(std::move(o));
      return;
    }
    case NotifyKind::ReplyDead:
    case NotifyKind::ReplyTimeout: {
      wire::Writer w(wire::MsgType::Error, server_.next_serial(), wire::kNoReplyExpected);
      w.error_name("org.freedesktop.DBus.Error.NoReply")
          .reply_serial(static_cast<uint32_t>(m.cookie_reply))
          .sender(kBusName)
          .destination(n.new_owner);
      w.add_string(n.kind == NotifyKind::ReplyDead ? "Message recipient disconnected from message bus without replying"
                                                   : "Message did not receive a reply (timeout by message bus)");
      push_bytes(w.finish());
      return;
    }
    case NotifyKind::Denied:
      push_bytes(access_denied(m.cookie_reply, n.new_owner));
      return;
    default:
      break;
  }
  // Name and id notifications become the driver's signals, in dbus-daemon's
  // order: NameLost to the old owner, NameOwnerChanged, NameAcquired to the new.
  const bool well_known = n.kind == NotifyKind::NameAdd || n.kind == NotifyKind::NameRemove ||
                          n.kind == NotifyKind::NameChange;
  if (d.roles & kdbus::kRoleEavesdrop) {
    // A monitor sees each of those as its recipients get them; a departing
    // connection is told it lost its unique name, a new one learns of its
    // unique name from the driver's answer to Hello.
    if (n.old_id != 0 && n.kind != NotifyKind::IdAdd) push_bytes(with_bus_metadata(driver_signal("NameLost", n.old_owner, {n.name}), m));
    push_bytes(with_bus_metadata(driver_signal("NameOwnerChanged", {}, {n.name, n.old_owner, n.new_owner}), m));
    if (well_known && n.new_id != 0) {
      std::vector<uint8_t> acquired = with_bus_metadata(driver_signal("NameAcquired", n.new_owner, {n.name}), m);
      const uint32_t serial = wire_serial(acquired);
      push_bytes(std::move(acquired));
      // The new owner's policy kept it from that signal: the error the bus
      // addressed to itself instead.
      if (n.acquired_denied) push_bytes(access_denied(serial, {}));
    }
    return;
  }
  if (d.roles & kdbus::kRoleOldOwner) push_bytes(with_bus_metadata(driver_signal("NameLost", name_, {n.name}), m));
  if (d.roles & kdbus::kRoleMatched) push_bytes(with_bus_metadata(driver_signal("NameOwnerChanged", {}, {n.name, n.old_owner, n.new_owner}), m));
  if (d.roles & kdbus::kRoleNewOwner) push_bytes(with_bus_metadata(driver_signal("NameAcquired", name_, {n.name}), m));
}

const kdbus::ProcessFacts& Peer::facts() {
  if (!facts_) facts_ = std::make_unique<kdbus::ProcessFacts>(kdbus::capture_process_facts(metadata_.has_creds ? metadata_.pid : 0));
  return *facts_;
}

// The message with the metadata this receiver asked for in header fields of
// its own copy of the header; the body is still shared. What the sender's
// connection knows is taken while it is connected; after that only the
// timestamp remains.
std::shared_ptr<const kdbus::Payload> Peer::with_metadata(const kdbus::Message& m) {
  using namespace kdbus;
  auto p = std::make_shared<Payload>();
  const Payload& src = m.payload;
  wire::FieldAppender a(src.head.data(), src.head.size(), p->head);
  const uint64_t f = attach_flags_;
  if (m.src_id == kIdBus) {
    add_bus_metadata(a, m);
  } else if (f & kAttachTimestamp) {
    a.u64_tuple(wire::kFieldBus1Timestamp, {m.seqnum, m.monotonic_ns, m.realtime_ns});
  }
  Peer* sender = m.src_id != kIdBus ? server_.peer(m.src_id) : nullptr;
  if (sender != nullptr) {
    const Metadata& md = sender->metadata_;
    if ((f & kAttachCreds) && md.has_creds) a.u32_tuple(wire::kFieldBus1Creds, {md.uid, md.gid});
    if ((f & kAttachPids) && md.has_creds) {
      a.u32_tuple(wire::kFieldBus1Pids, {static_cast<uint32_t>(md.pid), 0, static_cast<uint32_t>(sender->facts().ppid)});
    }
    if ((f & kAttachAuxgroups) && md.has_groups) a.u32_array(wire::kFieldBus1Auxgroups, {md.groups.begin(), md.groups.end()});
    if (f & kAttachNames) {
      ConnInfo ci;
      if (server_.bus().conn_info(m.src_id, {}, ci) == 0) {
        a.string_array(wire::kFieldBus1Names, {ci.names.begin(), ci.names.end()});
      }
    }
    if (md.has_creds) {
      if (f & kAttachPidComm) a.string(wire::kFieldBus1PidComm, sender->facts().comm);
      if (f & kAttachExe) a.string(wire::kFieldBus1Exe, sender->facts().exe);
      if (f & kAttachCmdline) a.bytes(wire::kFieldBus1Cmdline, sender->facts().cmdline);
      if (f & kAttachCgroup) a.string(wire::kFieldBus1Cgroup, sender->facts().cgroup);
      const ProcessFacts& pf = sender->facts();
      if (f & kAttachTidComm) a.string(wire::kFieldBus1TidComm, pf.tid_comm);
      if ((f & kAttachCaps) && pf.has_caps) a.u64_tuple(wire::kFieldBus1Caps, {pf.caps[0], pf.caps[1], pf.caps[2], pf.caps[3]});
      if ((f & kAttachAudit) && pf.has_audit) a.u32_tuple(wire::kFieldBus1Audit, {pf.loginuid, pf.sessionid});
    }
    if ((f & kAttachSeclabel) && md.has_seclabel) a.string(wire::kFieldBus1Seclabel, md.seclabel);
    if ((f & kAttachConnDescription) && !sender->description().empty()) {
      a.string(wire::kFieldBus1ConnDescription, sender->description());
    }
  }
  a.finish();
  const size_t body_offset = a.original_body_offset();
  if (src.head.size() > body_offset) p->head.insert(p->head.end(), src.head.begin() + body_offset, src.head.end());
  p->body_buffer = src.body_buffer;
  p->body = src.body;
  p->body_len = src.body_len;
  return p;
}

void Peer::add_bus_metadata(wire::FieldAppender& a, const kdbus::Message& m) const {
  using namespace kdbus;
  const uint64_t f = attach_flags_;
  if (f & kAttachTimestamp) a.u64_tuple(wire::kFieldBus1Timestamp, {m.seqnum, m.monotonic_ns, m.realtime_ns});
  if (f & kAttachCreds) a.u32_tuple(wire::kFieldBus1Creds, {::getuid(), ::getgid()});
  if (f & kAttachPids) {
    a.u32_tuple(wire::kFieldBus1Pids, {static_cast<uint32_t>(::getpid()), static_cast<uint32_t>(::getpid()), static_cast<uint32_t>(::getppid())});
  }
}

std::vector<uint8_t> Peer::with_bus_metadata(std::vector<uint8_t> bytes, const kdbus::Message& m) const {
  if ((attach_flags_ & (kdbus::kAttachTimestamp | kdbus::kAttachCreds | kdbus::kAttachPids)) == 0) return bytes;
  std::vector<uint8_t> out;
  wire::FieldAppender a(bytes.data(), bytes.size(), out);
  add_bus_metadata(a, m);
  a.finish();
  out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(a.original_body_offset()), bytes.end());
  return out;
}

// Deliveries stay in the engine queue (where the receiver's limits apply)
// until the socket takes them: only a window of them is staged for writing.
void Peer::pull_and_write() {
  while (!closed_) {
    if (id_ != 0) {
      kdbus::Delivery d;
      if (receive_priority_) {
        // What is staged can no longer be overtaken: one message at a time.
        if (out_.empty() && server_.bus().recv(id_, kdbus::kRecvUsePriority, INT64_MAX, d) == 0) to_wire(d);
      } else {
        while (out_bytes_ < kOutWindow && server_.bus().recv(id_, 0, 0, d) == 0) to_wire(d);
      }
    }
    // Nothing staged means the engine queue is empty too: the next delivery
    // wakes us through queue_ready.
    if (out_.empty()) break;
    write_out();
    // Still staged: the socket is full, and becoming writable wakes us.
    if (!out_.empty()) break;
  }
  update_poll();
}

void Peer::write_out() {
  while (!out_.empty() && !closed_) {
    struct iovec iov[kMaxIov];
    int n_iov = 0;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead)];
    struct msghdr mh {};
    // File descriptors must travel with the first byte of their message, so
    // a message with fds starts a write of its own.
    const Out& first = out_.front();
    if (first.fds && !first.fds->fds.empty() && first.offset == 0) {
      size_t count = std::min(first.fds->fds.size(), kMaxFdsPerRead);
      mh.msg_control = control;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * count);
      struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * count);
      for (size_t i = 0; i < count; ++i) {
        int fd = first.fds->fds[i].get();
        std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
      }
    }
    for (auto it = out_.begin(); it != out_.end() && n_iov + 2 <= kMaxIov; ++it) {
      if (it != out_.begin() && it->fds && !it->fds->fds.empty()) break;
      const kdbus::Payload& p = *it->data;
      size_t skip = it->offset;
      if (skip < p.head.size()) {
        iov[n_iov++] = {const_cast<uint8_t*>(p.head.data() + skip), p.head.size() - skip};
        skip = 0;
      } else {
        skip -= p.head.size();
      }
      if (p.body_len > skip) iov[n_iov++] = {const_cast<uint8_t*>(p.body + skip), p.body_len - skip};
    }
    mh.msg_iov = iov;
    mh.msg_iovlen = n_iov;
    ssize_t w;
    do {
      w = ::sendmsg(fd_.get(), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close("write failed");
      return;
    }
    size_t left = static_cast<size_t>(w);
    while (left > 0 && !out_.empty()) {
      Out& o = out_.front();
      size_t rest = o.data->size() - o.offset;
      if (left >= rest) {
        left -= rest;
        out_bytes_ -= o.data->size();
        out_.pop_front();
      } else {
        o.offset += left;
        left = 0;
      }
    }
  }
  update_poll();
}

void Peer::close(const std::string& why) {
  if (closed_) return;
  if (server_.debug()) std::fprintf(stderr, "kdbus-bridge: disconnecting %s: %s\n", name_.empty() ? "(unregistered)" : name_.c_str(), why.c_str());
  closed_ = true;
  account_->set_listener(nullptr);
  out_.clear();
  out_bytes_ = 0;
  if (id_ != 0) server_.bus().disconnect(id_);
  server_.peer_closed(this);
}

}  // namespace bridge
