// A peer's part of a handover snapshot (docs/handover-native.md, PEER).
#include <algorithm>

#include "engine/snapshot.h"
#include "peer.h"
#include "util/snapshot_io.h"

namespace bridge {
namespace {

uint64_t age(uint64_t at_ms, uint64_t now_ms) { return at_ms == 0 ? 0 : now_ms - std::min(at_ms, now_ms) + 1; }
uint64_t from_age(uint64_t a, uint64_t now_ms) { return a == 0 ? 0 : now_ms - std::min(a - 1, now_ms); }

void save_fd_list(snap::Writer& w, const std::vector<int>& fds) {
  w.u32(static_cast<uint32_t>(fds.size()));
  for (int fd : fds) w.u32(w.fd(fd));
}

}  // namespace

void Peer::save(snap::Writer& w, uint64_t now_ms) const {
  w.u32(w.fd(fd_.get()));
  w.u8(is_unix_);
  w.u8(static_cast<uint8_t>(state_));
  w.u8(sasl_ != nullptr);
  if (sasl_) sasl_->save(w);
  w.u8(unix_fd_negotiated_);
  w.u32(static_cast<uint32_t>(authorized_uid_));
  kdbus::snapshot::save_metadata(w, metadata_);
  w.u8(pidfd_asked_);
  w.u32(pidfd_ && pidfd_->valid() ? w.fd(pidfd_->get()) : snap::kNoFd);
  w.u64(id_);
  w.str(name_);
  w.u8(monitor_);
  w.i64(send_priority_);
  w.u64(attach_flags_);
  w.u8(receive_priority_);
  w.str(description());
  w.u8(counted_incomplete);
  w.u8(counted_completed);
  w.u32(counted_uid);
  w.u64(age(accepted_at_ms, now_ms));
  w.u64(age(fds_pending_since_ms, now_ms));
  // An idle peer has lent its input buffer back: nothing pending, no buffer.
  const size_t pending = pending_input_bytes();
  w.bytes(pending == 0 ? nullptr : in_.data() + in_start_, pending);
  w.u8(large_.buffer != nullptr);
  if (large_.buffer) {
    w.u64(large_.total);
    w.bytes(large_.buffer->data(), large_.filled);
  }
  std::vector<int> fds;
  for (const util::UniqueFd& fd : in_fds_) fds.push_back(fd.get());
  save_fd_list(w, fds);
  w.u64(in_bytes_);
  w.u32(static_cast<uint32_t>(fd_arrivals_.size()));
  for (const FdArrival& a : fd_arrivals_) {
    w.u64(a.at);
    w.u64(a.count);
  }
  w.u32(static_cast<uint32_t>(out_.size()));
  for (const Out& o : out_) {
    const kdbus::Payload& p = *o.data;
    w.u64(p.size());
    w.u64(o.offset);
    w.buffer().insert(w.buffer().end(), p.head.begin(), p.head.end());
    if (p.body_len != 0) w.buffer().insert(w.buffer().end(), p.body, p.body + p.body_len);
    fds.clear();
    if (o.fds) {
      for (const util::UniqueFd& fd : o.fds->fds) fds.push_back(fd.get());
    }
    save_fd_list(w, fds);
  }
}

std::vector<const kdbus::Message*> Peer::staged_messages() const {
  std::vector<const kdbus::Message*> out;
  for (const Out& o : out_) out.push_back(o.keep.get());
  return out;
}

void Peer::keep_staged(size_t i, std::shared_ptr<const kdbus::Message> m) {
  if (i >= out_.size()) throw snap::FormatError("snapshot: a charge for output that is not there");
  (out_.begin() + static_cast<std::ptrdiff_t>(i))->keep = std::move(m);
}

void Peer::load(snap::Reader& r, uint64_t now_ms) {
  const uint8_t state = r.u8();
  if (state > static_cast<uint8_t>(State::Active)) throw snap::FormatError("snapshot: unknown peer state");
  state_ = static_cast<State>(state);
  if (r.u8() != 0) {
    sasl_->load(r);
  } else {
    sasl_.reset();
  }
  unix_fd_negotiated_ = r.u8() != 0;
  authorized_uid_ = static_cast<uid_t>(r.u32());
  metadata_ = kdbus::snapshot::load_metadata(r);
  pidfd_asked_ = r.u8() != 0;
  util::UniqueFd pidfd = r.take_fd();
  pidfd_ = pidfd.valid() ? std::make_shared<util::UniqueFd>(std::move(pidfd)) : nullptr;
  id_ = r.u64();
  name_ = r.str();
  monitor_ = r.u8() != 0;
  send_priority_ = r.i64();
  attach_flags_ = r.u64();
  receive_priority_ = r.u8() != 0;
  set_description(r.str());
  counted_incomplete = r.u8() != 0;
  counted_completed = r.u8() != 0;
  counted_uid = r.u32();
  accepted_at_ms = from_age(r.u64(), now_ms);
  fds_pending_since_ms = from_age(r.u64(), now_ms);
  std::string_view in = r.view();
  in_.assign(in.begin(), in.end());
  in_start_ = 0;
  in_end_ = in_.size();
  if (r.u8() != 0) {
    large_.total = r.u64();
    std::string_view filled = r.view();
    if (filled.size() > large_.total) throw snap::FormatError("snapshot: a large message longer than announced");
    large_.buffer = std::make_shared<std::vector<uint8_t>>(filled.begin(), filled.end());
    large_.filled = filled.size();
    // Room for the next read, as read_once leaves it.
    large_.buffer->resize(std::min<size_t>(large_.total, std::max(large_.filled * 2, large_.filled + 4096)));
  }
  const uint32_t nfds = r.count(4);
  for (uint32_t i = 0; i < nfds; ++i) in_fds_.push_back(r.need_fd());
  in_bytes_ = r.u64();
  const uint32_t arrivals = r.count(16);
  for (uint32_t i = 0; i < arrivals; ++i) {
    FdArrival a;
    a.at = r.u64();
    a.count = r.u64();
    fd_arrivals_.push_back(a);
  }
  const uint32_t nout = r.count(20);
  for (uint32_t i = 0; i < nout; ++i) {
    Out o;
    const uint64_t size = r.u64();
    o.offset = r.u64();
    auto p = std::make_shared<kdbus::Payload>();
    std::string_view bytes = r.raw(size);
    p->head.assign(bytes.begin(), bytes.end());
    if (o.offset > size) throw snap::FormatError("snapshot: output offset beyond its message");
    const uint32_t n = r.count(4);
    if (n != 0) {
      o.fds = std::make_shared<kdbus::FdSet>();
      for (uint32_t k = 0; k < n; ++k) o.fds->fds.push_back(r.need_fd());
    }
    out_bytes_ += p->size();
    o.data = std::move(p);
    out_.push_back(std::move(o));
  }
}

}  // namespace bridge
