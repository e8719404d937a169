#include "fields.h"

#include <cstring>

namespace wire {
namespace {

uint32_t load_u32(const uint8_t* p, bool big_endian) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return big_endian ? __builtin_bswap32(v) : v;
}

size_t align_to(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

void read_trusted_fields(const uint8_t* data, size_t len, Header& out) {
  if (len < kFixedHeaderSize) return;
  const bool be = data[0] == 'B';
  out.big_endian = be;
  out.type = static_cast<MsgType>(data[1]);
  out.flags = data[2];
  out.body_length = load_u32(data + 4, be);
  out.serial = load_u32(data + 8, be);
  const size_t fields_end = kFixedHeaderSize + load_u32(data + 12, be);
  out.body_offset = align_to(fields_end, 8);
  size_t p = kFixedHeaderSize;
  while (p < fields_end && fields_end <= len) {
    p = align_to(p, 8);
    const uint8_t code = data[p];
    const char sig = static_cast<char>(data[p + 2]);
    p += 4;  // code, signature length, signature char, NUL
    std::string_view value;
    uint32_t number = 0;
    if (sig == 'g') {
      const uint8_t n = data[p];
      value = std::string_view(reinterpret_cast<const char*>(data + p + 1), n);
      p += 1 + n + 1;
    } else if (sig == 's' || sig == 'o') {
      p = align_to(p, 4);
      const uint32_t n = load_u32(data + p, be);
      value = std::string_view(reinterpret_cast<const char*>(data + p + 4), n);
      p += 4 + n + 1;
    } else {  // 'u'
      p = align_to(p, 4);
      number = load_u32(data + p, be);
      p += 4;
    }
    switch (code) {
      case kFieldPath: out.path = value; out.has_path = true; break;
      case kFieldInterface: out.interface = value; out.has_interface = true; break;
      case kFieldMember: out.member = value; out.has_member = true; break;
      case kFieldErrorName: out.error_name = value; out.has_error_name = true; break;
      case kFieldReplySerial: out.reply_serial = number; out.has_reply_serial = true; break;
      case kFieldDestination: out.destination = value; out.has_destination = true; break;
      case kFieldSender: out.sender = value; out.has_sender = true; break;
      case kFieldSignature: out.signature = value; out.has_signature = true; break;
      case kFieldUnixFds: out.unix_fds = number; break;
      default: break;
    }
  }
}

}  // namespace wire
