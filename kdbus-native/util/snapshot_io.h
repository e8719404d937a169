#pragma once
// The byte format of a handover snapshot (docs/handover.md): little-endian
// integers, length-prefixed strings and tagged, length-prefixed sections, so
// a later reader can skip what it does not know. fds travel beside the
// bytes and are named by their index in the snapshot's fd list.
#include <fcntl.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "fd.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the snapshot format is little-endian; this writer copies integers as they are in memory"
#endif

namespace snap {

// A snapshot that cannot be read: truncated, corrupt, or another format.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr uint32_t kNoFd = ~uint32_t{0};

class Writer {
 public:
  Writer() { buf_.reserve(1 << 16); }

  void u8(uint8_t v) { buf_.push_back(v); }
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void bytes(const void* p, size_t n) {
    u64(n);
    put(p, n);
  }
  void str(std::string_view s) { bytes(s.data(), s.size()); }
  // Index of `fd` in fds(); the fd stays open and owned by its holder.
  uint32_t fd(int fd) {
    if (fd < 0) return kNoFd;
    fds_.push_back(fd);
    return static_cast<uint32_t>(fds_.size() - 1);
  }

  // A section: its tag, then its length once end_section() knows it.
  size_t begin_section(uint32_t tag) {
    u32(tag);
    const size_t at = buf_.size();
    u64(0);
    return at;
  }
  void end_section(size_t at) {
    const uint64_t len = buf_.size() - at - 8;
    std::memcpy(buf_.data() + at, &len, 8);
  }

  std::vector<uint8_t>& buffer() { return buf_; }
  std::vector<int>& fds() { return fds_; }

 private:
  void put(const void* p, size_t n) {
    const size_t at = buf_.size();
    buf_.resize(at + n);
    if (n != 0) std::memcpy(buf_.data() + at, p, n);
  }
  std::vector<uint8_t> buf_;
  std::vector<int> fds_;
};

// The fds that came with a snapshot. Restored objects take them over rather
// than duplicate them: a bus at its fd limit could not hold two of each. The
// same fd may be named at several indices (after an exec, one fd shared by a
// connection and its metadata): the first taker owns it, later ones get a
// duplicate. What nobody took is closed with the table.
class FdTable {
 public:
  explicit FdTable(std::vector<int> fds) : fds_(std::move(fds)) {}
  FdTable(const FdTable&) = delete;
  FdTable& operator=(const FdTable&) = delete;
  ~FdTable() {
    for (int fd : fds_)
      if (fd >= 0 && taken_.insert(fd).second) ::close(fd);
  }

  size_t size() const { return fds_.size(); }
  util::UniqueFd take(uint32_t i) {
    const int fd = fds_.at(i);
    if (fd < 0) throw FormatError("snapshot: fd " + std::to_string(i) + " is not valid");
    if (taken_.insert(fd).second) return util::UniqueFd(fd);
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) throw FormatError("snapshot: fd " + std::to_string(fd) + ": " + std::strerror(errno));
    return util::UniqueFd(copy);
  }

 private:
  std::vector<int> fds_;
  std::unordered_set<int> taken_;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t len, FdTable* fds = nullptr)
      : p_(data), end_(data + len), fds_(fds) {}

  uint8_t u8() {
    need(1);
    return *p_++;
  }
  uint32_t u32() {
    uint32_t v;
    get(&v, 4);
    return v;
  }
  uint64_t u64() {
    uint64_t v;
    get(&v, 8);
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  // A view into the snapshot's bytes.
  std::string_view view() {
    const uint64_t n = u64();
    need(n);
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::string str() { return std::string(view()); }
  // `n` bytes without a length in front.
  std::string_view raw(uint64_t n) {
    need(n);
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  // A count of items that each take at least `min_size` bytes: bounded by
  // what is left, so a corrupt count cannot make the reader allocate wildly.
  uint32_t count(size_t min_size) {
    const uint32_t n = u32();
    if (min_size != 0 && n > left() / min_size) throw FormatError("snapshot: count beyond the data");
    return n;
  }
  // The fd at this index of the snapshot's fd list, now owned by the caller
  // (invalid for kNoFd).
  util::UniqueFd take_fd() {
    const uint32_t i = u32();
    if (i == kNoFd) return util::UniqueFd();
    if (fds_ == nullptr || i >= fds_->size()) throw FormatError("snapshot: fd index out of range");
    return fds_->take(i);
  }
  util::UniqueFd need_fd() {
    util::UniqueFd fd = take_fd();
    if (!fd.valid()) throw FormatError("snapshot: an fd is missing");
    return fd;
  }

  // The next section: its tag and a reader over exactly its bytes.
  bool next_section(uint32_t& tag, Reader& body) {
    if (p_ == end_) return false;
    tag = u32();
    const uint64_t n = u64();
    need(n);
    body = Reader(p_, n, fds_);
    p_ += n;
    return true;
  }

  size_t left() const { return static_cast<size_t>(end_ - p_); }
  bool done() const { return p_ == end_; }

 private:
  void need(uint64_t n) const {
    if (n > left()) throw FormatError("snapshot: truncated");
  }
  void get(void* out, size_t n) {
    need(n);
    std::memcpy(out, p_, n);
    p_ += n;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  FdTable* fds_;
};

constexpr uint32_t tag(const char (&s)[5]) {
  return static_cast<uint32_t>(static_cast<uint8_t>(s[0])) | static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(s[3])) << 24;
}

}  // namespace snap

namespace snap {

// The envelope around the sections: magic, format version, the writer's
// version string, then the length and an FNV-1a hash of everything after.
constexpr char kMagic[8] = {'K', 'D', 'B', 'U', 'S', 'N', 'A', 'P'};
constexpr uint32_t kFormatVersion = 1;

inline uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Starts a snapshot; returns where seal() fills in the length and hash.
inline size_t begin_envelope(Writer& w, std::string_view writer_version) {
  for (char c : kMagic) w.u8(static_cast<uint8_t>(c));
  w.u32(kFormatVersion);
  w.str(writer_version);
  const size_t at = w.buffer().size();
  w.u64(0);
  w.u64(0);
  return at;
}

inline void seal(Writer& w, size_t at) {
  std::vector<uint8_t>& b = w.buffer();
  const uint64_t len = b.size() - at - 16;
  const uint64_t hash = fnv1a(b.data() + at + 16, len);
  std::memcpy(b.data() + at, &len, 8);
  std::memcpy(b.data() + at + 8, &hash, 8);
}

// Checks the envelope and returns a reader over the sections; the writer's
// version string goes to `writer_version`. Throws FormatError saying why.
inline Reader open_envelope(const uint8_t* data, size_t len, FdTable* fds,
                            std::string& writer_version) {
  if (len < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0)
    throw FormatError("not a kdbus-bridge state snapshot (bad magic)");
  Reader r(data + sizeof kMagic, len - sizeof kMagic, fds);
  const uint32_t version = r.u32();
  if (version != kFormatVersion)
    throw FormatError("snapshot format version " + std::to_string(version) + ", this build reads version " +
                      std::to_string(kFormatVersion));
  writer_version = r.str();
  const uint64_t body_len = r.u64();
  const uint64_t hash = r.u64();
  if (body_len != r.left())
    throw FormatError("snapshot length mismatch: the header says " + std::to_string(body_len) + " bytes, " +
                      std::to_string(r.left()) + " are there");
  const uint8_t* body = data + (len - r.left());
  if (fnv1a(body, body_len) != hash) throw FormatError("snapshot corrupt: checksum mismatch");
  return Reader(body, body_len, fds);
}

}  // namespace snap
