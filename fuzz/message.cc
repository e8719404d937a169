// libFuzzer harness: framing and validation of one D-Bus message, then the
// form the bus forwards (its own header with SENDER, the original body),
// which must parse again with the same fields. Every buffer handed to the
// wire code is exactly as long as its contents, so that a read one byte
// past the end is an ASan report rather than a silent success.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "../kdbus-native/wire/fields.h"
#include "../kdbus-native/wire/message.h"

namespace {

// A sender as the bus writes it: a unique name longer than most, so the
// forwarded header is laid out differently from the original.
constexpr std::string_view kSender = ":1.4294967295";

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "round trip: %s\n", what);
  std::abort();
}

std::unique_ptr<uint8_t[]> exact_copy(const uint8_t* data, size_t len) {
  auto copy = std::make_unique<uint8_t[]>(len == 0 ? 1 : len);
  if (len != 0) std::memcpy(copy.get(), data, len);
  return copy;
}

using Args = std::vector<std::tuple<uint8_t, char, std::string>>;

Args string_args(const wire::Header& h, const uint8_t* body, size_t len) {
  auto exact = exact_copy(body, len);
  Args args;
  wire::for_each_string_arg(h, exact.get(), len, [&](uint8_t index, char type, std::string_view v) {
    args.emplace_back(index, type, std::string(v));
  });
  return args;
}

// The fields the forwarded form keeps, as the bus describes them.
void check_same_fields(const wire::Header& a, const wire::Header& b, bool check_sender) {
  if (a.big_endian != b.big_endian || a.type != b.type || a.flags != b.flags) fail("fixed header changed");
  if (a.body_length != b.body_length || a.serial != b.serial) fail("length or serial changed");
  if (a.has_path != b.has_path || a.path != b.path) fail("PATH changed");
  if (a.has_interface != b.has_interface || a.interface != b.interface) fail("INTERFACE changed");
  if (a.has_member != b.has_member || a.member != b.member) fail("MEMBER changed");
  if (a.has_error_name != b.has_error_name || a.error_name != b.error_name) fail("ERROR_NAME changed");
  if (a.has_destination != b.has_destination || a.destination != b.destination) fail("DESTINATION changed");
  if (a.has_reply_serial != b.has_reply_serial || a.reply_serial != b.reply_serial) fail("REPLY_SERIAL changed");
  if (a.signature != b.signature) fail("SIGNATURE changed");
  if (a.unix_fds != b.unix_fds) fail("UNIX_FDS changed");
  if (check_sender && (!b.has_sender || b.sender != kSender)) fail("SENDER is not the bus's");
}

}  // namespace

namespace {

// Most mutations break the body length first; setting it to what the input
// holds lets them reach the header fields and the body instead.
std::unique_ptr<uint8_t[]> with_consistent_length(const uint8_t* data, size_t size) {
  auto copy = exact_copy(data, size);
  if (size < wire::kFixedHeaderSize || (data[0] != 'l' && data[0] != 'B')) return copy;
  const bool be = data[0] == 'B';
  const uint32_t fields_len = be ? (uint32_t{data[12]} << 24 | uint32_t{data[13]} << 16 | uint32_t{data[14]} << 8 | data[15])
                                 : (uint32_t{data[15]} << 24 | uint32_t{data[14]} << 16 | uint32_t{data[13]} << 8 | data[12]);
  const size_t head = (wire::kFixedHeaderSize + size_t{fields_len} + 7) & ~size_t{7};
  if (head > size) return copy;
  const uint32_t body = uint32_t(size - head);
  for (int i = 0; i < 4; ++i) copy[4 + i] = uint8_t(be ? body >> (8 * (3 - i)) : body >> (8 * i));
  return copy;
}

int check_message(const uint8_t* data, size_t size);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_message(data, size);
  const auto consistent = with_consistent_length(data, size);
  check_message(consistent.get(), size);
  return 0;
}

namespace {

int check_message(const uint8_t* data, size_t size) {
  // Framing must decide from the fixed header alone, whatever follows.
  size_t total = 0;
  std::string err;
  const wire::Frame frame = wire::frame_length(data, size, total, err);
  if (size < wire::kFixedHeaderSize && frame != wire::Frame::NeedMore) fail("framing decided too early");
  if (frame == wire::Frame::Ok && (total < wire::kFixedHeaderSize || total > wire::kMaxMessageSize))
    fail("framed length out of range");

  wire::Header h;
  if (!wire::parse_message(data, size, h, err)) {
    if (err.empty()) fail("invalid message without a reason");
    return 0;
  }
  if (frame != wire::Frame::Ok || total != size) fail("parsed a message its framing disagrees with");
  if (h.body_offset + h.body_length != size) fail("body offset and length do not add up");

  const uint8_t* body = data + h.body_offset;
  const Args args = string_args(h, body, h.body_length);

  // What Peer::prepare builds for receivers.
  std::vector<uint8_t> forwarded;
  wire::write_forward_header(h, kSender, forwarded);
  const size_t head_len = forwarded.size();
  forwarded.insert(forwarded.end(), body, body + h.body_length);
  auto exact = exact_copy(forwarded.data(), forwarded.size());

  wire::Header again;
  if (!wire::parse_message(exact.get(), forwarded.size(), again, err)) {
    // A message at the size limit has no room for the bus's SENDER field.
    if (forwarded.size() > wire::kMaxMessageSize) return 0;
    std::fprintf(stderr, "forwarded message does not parse: %s\n", err.c_str());
    std::abort();
  }
  if (again.body_offset != head_len) fail("forwarded header length differs from what was written");
  check_same_fields(h, again, true);

  // The engine reads the fields of the bytes it wrote without validating.
  wire::Header trusted;
  wire::read_trusted_fields(exact.get(), forwarded.size(), trusted);
  check_same_fields(again, trusted, true);
  if (trusted.body_offset != again.body_offset) fail("trusted reader finds the body elsewhere");

  if (string_args(again, exact.get() + again.body_offset, again.body_length) != args)
    fail("string arguments differ after forwarding");
  return 0;
}

}  // namespace
