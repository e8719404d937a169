#pragma once
// Validation of marshalled values against a signature, shared by the header
// fields and the body. Works in place on untrusted bytes without allocating.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wire::detail {

// Total container nesting (arrays, structs, dict entries and variants) that
// a value may reach; the spec's 32 arrays plus 32 structs, which variants
// must not be a way around.
constexpr unsigned kMaxValueDepth = 64;

inline uint32_t load_u32(const uint8_t* p, bool big_endian) {
  return big_endian ? (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]
                    : (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}

// Well-formed UTF-8 (shortest forms, no surrogates, nothing above U+10FFFF)
// containing no NUL byte.
bool valid_utf8(const uint8_t* p, size_t n);

struct ValueContext {
  const uint8_t* msg;  // alignment is measured from here (the message start)
  bool big_endian;
  uint32_t unix_fds;   // declared fds; 'h' values are not checked against it (see message.h)
};

// Checks that the bytes from `pos` hold values of every complete type in
// `signature` (which must already be a valid signature), reading nothing at
// or past `end`. `depth` is the container nesting the values sit in. On
// success advances `pos` past the last value and returns nullptr; otherwise
// returns a short reason.
const char* check_values(const ValueContext& ctx, std::string_view signature, size_t& pos, size_t end,
                         unsigned depth);

}  // namespace wire::detail
