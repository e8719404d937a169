#pragma once
// D-Bus1 messages on the wire: framing, strict validation, the header the bus
// forwards, and a writer for the messages the bus synthesises itself.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wire {

// Like dbus-daemon, parse_message accepts any non-zero type: later protocol
// revisions may add types, which have no required fields and are carried
// through unchanged, so a Header's type can hold a value not listed here.
enum class MsgType : uint8_t { Invalid = 0, MethodCall = 1, MethodReturn = 2, Error = 3, Signal = 4 };

enum MsgFlag : uint8_t {
  kNoReplyExpected = 0x1,
  kNoAutoStart = 0x2,
  kAllowInteractiveAuthorization = 0x4,
};

enum FieldCode : uint8_t {
  kFieldPath = 1,
  kFieldInterface = 2,
  kFieldMember = 3,
  kFieldErrorName = 4,
  kFieldReplySerial = 5,
  kFieldDestination = 6,
  kFieldSender = 7,
  kFieldSignature = 8,
  kFieldUnixFds = 9,
};

// Header field codes of the org.kdbusbridge.Bus1 extension, from the range
// the D-Bus specification leaves to implementations (clients ignore fields
// they do not know). The bus never forwards what a sender put in them: it
// drops unknown fields, and writes the metadata fields itself on delivery.
enum Bus1FieldCode : uint8_t {
  kFieldBus1Priority = 0xA0,  // 'x', from a sender: this message's priority (lower first)
};

constexpr size_t kFixedHeaderSize = 16;
constexpr size_t kMaxMessageSize = size_t{1} << 27;  // 128 MiB
constexpr size_t kMaxArraySize = size_t{1} << 26;    // 64 MiB

enum class Frame { NeedMore, Ok, Invalid };

// From the first bytes of a message (at least kFixedHeaderSize to decide),
// the total length of the message: fixed header, fields, padding and body.
// Invalid when the endianness byte, version, or sizes are out of range.
Frame frame_length(const uint8_t* data, size_t len, size_t& total, std::string& err);

// A parsed header. String fields are views into the message bytes and are
// empty when absent (has_* says which were present).
struct Header {
  bool big_endian = false;
  MsgType type = MsgType::Invalid;
  uint8_t flags = 0;
  uint32_t body_length = 0;
  uint32_t serial = 0;
  std::string_view path, interface, member, error_name, destination, sender, signature;
  bool has_path = false, has_interface = false, has_member = false, has_error_name = false,
       has_destination = false, has_sender = false, has_signature = false;
  bool has_reply_serial = false;
  uint32_t reply_serial = 0;
  uint32_t unix_fds = 0;
  bool has_priority = false;  // kFieldBus1Priority
  int64_t priority = 0;
  size_t body_offset = 0;  // header fields plus padding to 8
};

// Validates one complete message (exactly `len` bytes as given by
// frame_length): header fields, their types and required presence per
// message type, names/paths/signature syntax, then the whole body against the
// signature (alignment, zero padding, UTF-8 without NUL in strings, booleans
// 0/1, array and nesting limits). A unix fd index beyond the message's fds
// is left for the receiver to refuse, as dbus-daemon leaves it. On failure
// returns false, sets err to a short reason and leaves `out` unspecified.
// Allocates nothing on success. Unique names in DESTINATION and SENDER are
// checked as loosely as dbus-daemon does (see valid_bus_name for the strict
// rule).
bool parse_message(const uint8_t* data, size_t len, Header& out, std::string& err);

// Calls fn(index, type, value) for each top-level body argument, up to index
// 63, that is a STRING ('s') or OBJECT_PATH ('o'), for match rules (argN,
// argNpath, arg0namespace). `body` is the message's body (wherever it is
// kept; h.body_offset is not used); the message must have passed parse_message.
void for_each_string_arg(const Header& h, const uint8_t* body, size_t body_len,
                         const std::function<void(uint8_t index, char type, std::string_view value)>& fn);

// Appends to `out` the header the bus forwards for message `h`: the same
// type, flags, body length and serial, the known fields of h except SENDER,
// SENDER set to `sender` (omitted when empty), unknown fields dropped, in h's
// byte order, padded to 8. The original body bytes follow it unchanged.
void write_forward_header(const Header& h, std::string_view sender, std::vector<uint8_t>& out);

// Builds a complete little-endian message, for what the bus itself sends.
class Writer {
 public:
  Writer(MsgType type, uint32_t serial, uint8_t flags = 0);
  Writer& path(std::string_view v);
  Writer& interface(std::string_view v);
  Writer& member(std::string_view v);
  Writer& error_name(std::string_view v);
  Writer& destination(std::string_view v);
  Writer& sender(std::string_view v);
  Writer& reply_serial(uint32_t v);

  // Body arguments, appended in order; the signature follows from the calls.
  Writer& add_string(std::string_view v);
  Writer& add_object_path(std::string_view v);
  Writer& add_uint32(uint32_t v);
  Writer& add_bool(bool v);
  Writer& add_string_array(const std::vector<std::string_view>& v);

  std::vector<uint8_t> finish() const;

 private:
  MsgType type_;
  uint32_t serial_;
  uint8_t flags_;
  std::string path_, interface_, member_, error_name_, destination_, sender_;
  bool has_reply_serial_ = false;
  uint32_t reply_serial_ = 0;
  std::string signature_;
  std::vector<uint8_t> body_;
};

// Name and path syntax per the D-Bus specification.
bool valid_bus_name(std::string_view s);        // unique (":...") or well-known
bool valid_well_known_name(std::string_view s);
bool valid_interface_name(std::string_view s);
bool valid_member_name(std::string_view s);
bool valid_object_path(std::string_view s);
bool valid_signature(std::string_view s);       // a sequence of complete types, ≤255

}  // namespace wire
