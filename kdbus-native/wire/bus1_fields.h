#pragma once
// Header fields the bus adds to a message it delivers (the metadata of the
// org.kdbusbridge.Bus1 extension), written in the message's own byte order
// behind the fields it already has.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace wire {

// Codes and types of the metadata fields (README: "Metadata header fields").
enum Bus1MetadataField : uint8_t {
  kFieldBus1Timestamp = 0xA1,    // (ttt) seqnum, CLOCK_MONOTONIC ns, CLOCK_REALTIME ns
  kFieldBus1Creds = 0xA2,        // (uu) uid, gid
  kFieldBus1Pids = 0xA3,         // (uuu) pid, tid (0: unknown), ppid
  kFieldBus1Auxgroups = 0xA4,    // au
  kFieldBus1Names = 0xA5,        // as: well-known names the sender owns
  kFieldBus1PidComm = 0xA7,      // s
  kFieldBus1Exe = 0xA8,          // s
  kFieldBus1Cmdline = 0xA9,      // ay: arguments each ended by NUL
  kFieldBus1Cgroup = 0xAA,       // s
  kFieldBus1Seclabel = 0xAC,     // s
};

// Copies the header of `msg` (its first `head_len` bytes hold at least the
// fixed header and the fields array) into `out`, lets `add` append fields,
// then fixes the fields array length and pads to 8. The body is not copied.
class FieldAppender {
 public:
  FieldAppender(const uint8_t* msg, size_t head_len, std::vector<uint8_t>& out);
  // The offset at which the body starts in the original message.
  size_t original_body_offset() const { return body_offset_; }

  void u64_tuple(uint8_t code, std::initializer_list<uint64_t> v);  // (t...)
  void u32_tuple(uint8_t code, std::initializer_list<uint32_t> v);  // (u...)
  void string(uint8_t code, std::string_view s);                    // s
  void bytes(uint8_t code, std::string_view b);                     // ay
  void u32_array(uint8_t code, const std::vector<uint32_t>& v);     // au
  void string_array(uint8_t code, const std::vector<std::string_view>& v);  // as
  // Ends the fields array: call once, after the fields.
  void finish();

 private:
  void begin(uint8_t code, std::string_view sig);
  void pad(size_t alignment);
  void put_u32(uint32_t v);
  void put_u64(uint64_t v);

  std::vector<uint8_t>& out_;
  bool big_endian_;
  size_t body_offset_ = 0;
};

}  // namespace wire
