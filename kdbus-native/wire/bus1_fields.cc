#include "bus1_fields.h"

#include <cstring>

#include "message.h"

namespace wire {
namespace {

uint32_t load_u32(const uint8_t* p, bool be) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return be ? __builtin_bswap32(v) : v;
}

}  // namespace

FieldAppender::FieldAppender(const uint8_t* msg, size_t head_len, std::vector<uint8_t>& out)
    : out_(out), big_endian_(msg[0] == 'B') {
  const size_t fields_end = kFixedHeaderSize + load_u32(msg + 12, big_endian_);
  body_offset_ = (fields_end + 7) & ~size_t{7};
  out_.assign(msg, msg + std::min(fields_end, head_len));
}

void FieldAppender::pad(size_t alignment) {
  while (out_.size() % alignment != 0) out_.push_back(0);
}

void FieldAppender::put_u32(uint32_t v) {
  if (big_endian_) v = __builtin_bswap32(v);
  const size_t at = out_.size();
  out_.resize(at + 4);
  std::memcpy(out_.data() + at, &v, 4);
}

void FieldAppender::put_u64(uint64_t v) {
  if (big_endian_) v = __builtin_bswap64(v);
  const size_t at = out_.size();
  out_.resize(at + 8);
  std::memcpy(out_.data() + at, &v, 8);
}

void FieldAppender::begin(uint8_t code, std::string_view sig) {
  pad(8);
  out_.push_back(code);
  out_.push_back(static_cast<uint8_t>(sig.size()));
  out_.insert(out_.end(), sig.begin(), sig.end());
  out_.push_back(0);
}

void FieldAppender::u64_tuple(uint8_t code, std::initializer_list<uint64_t> v) {
  begin(code, std::string("(") + std::string(v.size(), 't') + ")");
  pad(8);
  for (uint64_t x : v) put_u64(x);
}

void FieldAppender::u32_tuple(uint8_t code, std::initializer_list<uint32_t> v) {
  begin(code, std::string("(") + std::string(v.size(), 'u') + ")");
  pad(8);
  for (uint32_t x : v) put_u32(x);
}

void FieldAppender::string(uint8_t code, std::string_view s) {
  begin(code, "s");
  pad(4);
  put_u32(static_cast<uint32_t>(s.size()));
  out_.insert(out_.end(), s.begin(), s.end());
  out_.push_back(0);
}

void FieldAppender::bytes(uint8_t code, std::string_view b) {
  begin(code, "ay");
  pad(4);
  put_u32(static_cast<uint32_t>(b.size()));
  out_.insert(out_.end(), b.begin(), b.end());
}

void FieldAppender::u32_array(uint8_t code, const std::vector<uint32_t>& v) {
  begin(code, "au");
  pad(4);
  put_u32(static_cast<uint32_t>(v.size() * 4));
  for (uint32_t x : v) put_u32(x);
}

void FieldAppender::string_array(uint8_t code, const std::vector<std::string_view>& v) {
  begin(code, "as");
  pad(4);
  const size_t len_at = out_.size();
  put_u32(0);
  const size_t start = out_.size();
  for (std::string_view s : v) {
    pad(4);
    put_u32(static_cast<uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
    out_.push_back(0);
  }
  uint32_t len = static_cast<uint32_t>(out_.size() - start);
  if (big_endian_) len = __builtin_bswap32(len);
  std::memcpy(out_.data() + len_at, &len, 4);
}

void FieldAppender::finish() {
  uint32_t len = static_cast<uint32_t>(out_.size() - kFixedHeaderSize);
  if (big_endian_) len = __builtin_bswap32(len);
  std::memcpy(out_.data() + 12, &len, 4);
  pad(8);
}

}  // namespace wire
