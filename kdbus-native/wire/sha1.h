#pragma once
// SHA-1 (FIPS 180-4), only for DBUS_COOKIE_SHA1, which the D-Bus spec fixes to
// this digest; not used for anything that needs collision resistance.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wire {

class Sha1 {
 public:
  Sha1();
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::array<uint8_t, 20> finish();

 private:
  void block(const uint8_t* p);

  std::array<uint32_t, 5> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Lower-case hex of the SHA-1 digest of s.
std::string sha1_hex(std::string_view s);

}  // namespace wire
