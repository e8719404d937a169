#include "message.h"

#include <algorithm>
#include <cstring>

#include "signature.h"
#include "validate.h"

namespace wire {

using detail::load_u32;

namespace {

constexpr std::string_view kLocalPath = "/org/freedesktop/DBus/Local";
constexpr std::string_view kLocalInterface = "org.freedesktop.DBus.Local";

constexpr size_t align8(size_t n) { return (n + 7) & ~size_t{7}; }

// The type each known header field must carry, indexed by field code.
constexpr char kFieldType[] = {0, 'o', 's', 's', 's', 'u', 's', 's', 'g', 'u'};
constexpr uint8_t kLastKnownField = kFieldUnixFds;

std::string_view view_at(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// DESTINATION and SENDER as dbus-daemon accepts them: well-known names by
// the specification, but unique names more loosely (no minimum number of
// elements), so that no client that works against dbus-daemon is
// disconnected here for such a name. Routing simply finds no owner.
bool valid_bus_name_field(std::string_view s) {
  if (s.empty() || s[0] != ':') return valid_well_known_name(s);
  if (s.size() > 255) return false;
  bool after_dot = false;
  for (size_t k = 1; k < s.size(); ++k) {
    const char c = s[k];
    if (c == '.') {
      if (after_dot) return false;
      after_dot = true;
      continue;
    }
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return false;
    }
    after_dot = false;
  }
  return !after_dot;
}

bool fail(std::string& err, const char* reason) {
  err.assign(reason);
  return false;
}

// ---- header field output, shared by the forwarded header and the Writer

// Bytes one field takes, starting from an 8-aligned offset: code, a
// one-character variant signature with its NUL, then the value, which is
// already 4-aligned there.
constexpr size_t field_size(char type, size_t str_len) {
  switch (type) {
    case 'u': return 4 + 4;
    case 'g': return 4 + 1 + str_len + 1;
    default: return 4 + 4 + str_len + 1;
  }
}

inline void store_u32(uint8_t* p, uint32_t v, bool big_endian) {
  if (big_endian) {
    p[0] = uint8_t(v >> 24); p[1] = uint8_t(v >> 16); p[2] = uint8_t(v >> 8); p[3] = uint8_t(v);
  } else {
    p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); p[2] = uint8_t(v >> 16); p[3] = uint8_t(v >> 24);
  }
}

// Appends a fixed header and its fields, padded to 8, to out. `fields`
// calls its visitor with (code, type, string value, numeric value) for each
// field in order; it is run twice, once to size the header and once to
// write it, so that the buffer grows once and no field list is built. The
// region is zero-filled by resize, which provides every padding byte.
template <class Fields>
void append_header(std::vector<uint8_t>& out, bool big_endian, uint8_t type, uint8_t flags, uint32_t body_length,
                   uint32_t serial, const Fields& fields, size_t extra_capacity) {
  size_t fields_len = 0;
  fields([&](uint8_t, char t, std::string_view s, uint32_t) { fields_len = align8(fields_len) + field_size(t, s.size()); });
  const size_t header_len = align8(kFixedHeaderSize + fields_len);
  const size_t base = out.size();
  // Grow geometrically: callers may append many messages to one buffer.
  const size_t need = base + header_len + extra_capacity;
  if (out.capacity() < need) out.reserve(std::max(need, out.capacity() * 2));
  out.resize(base + header_len);
  uint8_t* const h = out.data() + base;
  h[0] = big_endian ? 'B' : 'l';
  h[1] = type;
  h[2] = flags;
  h[3] = 1;
  store_u32(h + 4, body_length, big_endian);
  store_u32(h + 8, serial, big_endian);
  store_u32(h + 12, uint32_t(fields_len), big_endian);
  size_t at = kFixedHeaderSize;
  fields([&](uint8_t code, char t, std::string_view s, uint32_t num) {
    at = align8(at);
    uint8_t* p = h + at;
    p[0] = code;
    p[1] = 1;
    p[2] = uint8_t(t);
    if (t == 'u') {
      store_u32(p + 4, num, big_endian);
    } else if (t == 'g') {
      p[4] = uint8_t(s.size());
      std::memcpy(p + 5, s.data(), s.size());
    } else {
      store_u32(p + 4, uint32_t(s.size()), big_endian);
      std::memcpy(p + 8, s.data(), s.size());
    }
    at += field_size(t, s.size());
  });
}

// ---- header field parsing

// Reads the value of known field `code` (whose variant signature was
// already checked to be its required type) at pos, within the fields array.
const char* read_known_field(const uint8_t* data, size_t& pos, size_t end, bool be, uint8_t code, Header& h) {
  const char type = kFieldType[code];
  if (type == 'u') {
    size_t a = (pos + 3) & ~size_t{3};
    if (a > end || 4 > end - a) return "header field truncated";
    for (; pos < a; ++pos) {
      if (data[pos] != 0) return "non-zero alignment padding";
    }
    const uint32_t v = load_u32(data + pos, be);
    pos += 4;
    if (code == kFieldReplySerial) {
      if (v == 0) return "reply serial is 0";
      h.has_reply_serial = true;
      h.reply_serial = v;
    } else {
      h.unix_fds = v;
    }
    return nullptr;
  }

  std::string_view s;
  if (type == 'g') {
    if (pos >= end) return "header field truncated";
    const size_t n = data[pos++];
    if (n >= end - pos) return "header field truncated";
    if (data[pos + n] != 0) return "signature not NUL-terminated";
    s = view_at(data + pos, n);
    pos += n + 1;
    if (!valid_signature(s)) return "invalid SIGNATURE field";
    h.signature = s;
    h.has_signature = true;
    return nullptr;
  }

  size_t a = (pos + 3) & ~size_t{3};
  if (a > end || 4 > end - a) return "header field truncated";
  for (; pos < a; ++pos) {
    if (data[pos] != 0) return "non-zero alignment padding";
  }
  const uint32_t n = load_u32(data + pos, be);
  pos += 4;
  if (n >= end - pos) return "header field truncated";
  if (data[pos + n] != 0) return "string not NUL-terminated";
  s = view_at(data + pos, n);
  pos += size_t{n} + 1;

  // Every valid name and path is ASCII without NUL, so syntax checks also
  // cover the UTF-8 rule for these strings.
  switch (code) {
    case kFieldPath:
      if (!valid_object_path(s)) return "invalid PATH field";
      if (s == kLocalPath) return "PATH uses the reserved local path";
      h.path = s;
      h.has_path = true;
      break;
    case kFieldInterface:
      if (!valid_interface_name(s)) return "invalid INTERFACE field";
      if (s == kLocalInterface) return "INTERFACE uses the reserved local interface";
      h.interface = s;
      h.has_interface = true;
      break;
    case kFieldMember:
      if (!valid_member_name(s)) return "invalid MEMBER field";
      h.member = s;
      h.has_member = true;
      break;
    case kFieldErrorName:
      if (!valid_interface_name(s)) return "invalid ERROR_NAME field";
      h.error_name = s;
      h.has_error_name = true;
      break;
    case kFieldDestination:
      if (!valid_bus_name_field(s)) return "invalid DESTINATION field";
      h.destination = s;
      h.has_destination = true;
      break;
    case kFieldSender:
      if (!valid_bus_name_field(s)) return "invalid SENDER field";
      h.sender = s;
      h.has_sender = true;
      break;
    default:
      return "unexpected header field";
  }
  return nullptr;
}

const char* check_required_fields(const Header& h) {
  switch (h.type) {
    case MsgType::MethodCall:
      if (!h.has_path) return "method call without PATH";
      if (!h.has_member) return "method call without MEMBER";
      break;
    case MsgType::Signal:
      if (!h.has_path) return "signal without PATH";
      if (!h.has_interface) return "signal without INTERFACE";
      if (!h.has_member) return "signal without MEMBER";
      break;
    case MsgType::Error:
      if (!h.has_error_name) return "error without ERROR_NAME";
      if (!h.has_reply_serial) return "error without REPLY_SERIAL";
      break;
    case MsgType::MethodReturn:
      if (!h.has_reply_serial) return "method return without REPLY_SERIAL";
      break;
    default:
      // Types from later protocol revisions carry no requirements here.
      break;
  }
  return nullptr;
}

const char* parse_fields(const uint8_t* data, size_t fields_end, Header& h) {
  const bool be = h.big_endian;
  const detail::ValueContext ctx{data, be, 0};
  uint16_t seen = 0;
  size_t pos = kFixedHeaderSize;
  while (pos < fields_end) {
    // Each field is a (yv) struct, 8-aligned inside the array.
    const size_t a = align8(pos);
    if (a >= fields_end) return "header fields array length inconsistent";
    for (; pos < a; ++pos) {
      if (data[pos] != 0) return "non-zero alignment padding";
    }
    const uint8_t code = data[pos++];
    if (code == 0) return "header field code 0";
    if (pos >= fields_end) return "header field truncated";
    const size_t n = data[pos++];
    if (n >= fields_end - pos) return "header field truncated";
    if (data[pos + n] != 0) return "variant signature not NUL-terminated";
    const std::string_view vsig = view_at(data + pos, n);
    pos += n + 1;

    if (code <= kLastKnownField) {
      if (vsig.size() != 1 || vsig[0] != kFieldType[code]) return "header field has the wrong type";
      if (seen & (1u << code)) return "header field appears twice";
      seen |= uint16_t(1u << code);
      if (const char* err = read_known_field(data, pos, fields_end, be, code, h)) return err;
    } else {
      // Unknown fields are ignored, but only once they are known to be
      // well-formed values.
      if (!sig::is_single_complete_type(vsig)) return "header field variant signature invalid";
      size_t va = (pos + sig::alignment(vsig[0]) - 1) & ~(sig::alignment(vsig[0]) - 1);
      if (va > fields_end) return "header field truncated";
      for (; pos < va; ++pos) {
        if (data[pos] != 0) return "non-zero alignment padding";
      }
      // Inside the fields array, its struct and the variant.
      if (const char* err = detail::check_values(ctx, vsig, pos, fields_end, 3)) return err;
      if (code == kFieldBus1Priority && vsig == "x") {
        uint64_t v;
        std::memcpy(&v, data + va, 8);
        h.priority = static_cast<int64_t>(be ? __builtin_bswap64(v) : v);
        h.has_priority = true;
      }
    }
  }
  return nullptr;
}

}  // namespace

// ---- framing

Frame frame_length(const uint8_t* data, size_t len, size_t& total, std::string& err) {
  if (len < kFixedHeaderSize) return Frame::NeedMore;
  bool be;
  if (data[0] == 'l') {
    be = false;
  } else if (data[0] == 'B') {
    be = true;
  } else {
    err.assign("invalid byte order");
    return Frame::Invalid;
  }
  if (data[3] != 1) {
    err.assign("unsupported protocol version");
    return Frame::Invalid;
  }
  const uint32_t body_len = load_u32(data + 4, be);
  const uint32_t fields_len = load_u32(data + 12, be);
  if (fields_len > kMaxArraySize) {
    err.assign("header fields array too long");
    return Frame::Invalid;
  }
  if (body_len > kMaxMessageSize) {
    err.assign("body too long");
    return Frame::Invalid;
  }
  // Both terms are bounded above, so the sum cannot overflow.
  const size_t t = align8(kFixedHeaderSize + size_t{fields_len}) + size_t{body_len};
  if (t > kMaxMessageSize) {
    err.assign("message too long");
    return Frame::Invalid;
  }
  total = t;
  return Frame::Ok;
}

// ---- parsing

bool parse_message(const uint8_t* data, size_t len, Header& out, std::string& err) {
  size_t total = 0;
  switch (frame_length(data, len, total, err)) {
    case Frame::NeedMore: return fail(err, "message shorter than the fixed header");
    case Frame::Invalid: return false;
    case Frame::Ok: break;
  }
  if (total != len) return fail(err, "message length does not match its header");

  // Filled in place, and reset member by member: copying or value-
  // initialising the whole struct costs as much as parsing a small header.
  Header& h = out;
  h.path = h.interface = h.member = h.error_name = h.destination = h.sender = h.signature = std::string_view();
  h.has_path = h.has_interface = h.has_member = h.has_error_name = h.has_destination = h.has_sender =
      h.has_signature = h.has_reply_serial = false;
  h.reply_serial = 0;
  h.unix_fds = 0;
  h.big_endian = data[0] == 'B';
  if (data[1] == 0) return fail(err, "invalid message type");
  h.type = static_cast<MsgType>(data[1]);
  h.flags = data[2];
  h.body_length = load_u32(data + 4, h.big_endian);
  h.serial = load_u32(data + 8, h.big_endian);
  if (h.serial == 0) return fail(err, "serial is 0");

  const size_t fields_end = kFixedHeaderSize + load_u32(data + 12, h.big_endian);
  if (const char* e = parse_fields(data, fields_end, h)) return fail(err, e);

  h.body_offset = align8(fields_end);
  for (size_t p = fields_end; p < h.body_offset; ++p) {
    if (data[p] != 0) return fail(err, "non-zero header padding");
  }
  if (const char* e = check_required_fields(h)) return fail(err, e);

  // With no SIGNATURE the body must be empty, which the walk below enforces
  // as "trailing data".
  size_t pos = h.body_offset;
  const detail::ValueContext ctx{data, h.big_endian, h.unix_fds};
  if (const char* e = detail::check_values(ctx, h.signature, pos, len, 0)) return fail(err, e);
  if (pos != len) return fail(err, "body has data beyond its signature");
  return true;
}

// ---- string arguments

void for_each_string_arg(const Header& h, const uint8_t* data, size_t len,
                         const std::function<void(uint8_t index, char type, std::string_view value)>& fn) {
  constexpr size_t kMaxArgIndex = 63;
  const bool be = h.big_endian;
  const std::string_view sig = h.signature;
  // The body starts 8-aligned in the message, so alignment counts from it alike.
  size_t pos = 0;
  size_t i = 0;
  // The message was validated, but the walk still refuses to read past len
  // so that misuse cannot turn into an out-of-bounds read.
  for (size_t index = 0; index <= kMaxArgIndex && i < sig.size() && pos <= len; ++index) {
    const char c = sig[i];
    const size_t next_i = sig::complete_type_end(sig, i);
    if (c == 's' || c == 'o') {
      pos = (pos + 3) & ~size_t{3};
      if (pos > len || 4 > len - pos) return;
      const uint32_t n = load_u32(data + pos, be);
      pos += 4;
      if (n >= len - pos) return;
      fn(uint8_t(index), c, view_at(data + pos, n));
      pos += size_t{n} + 1;
    } else if (const size_t fs = sig::fixed_size(c)) {
      pos = ((pos + fs - 1) & ~(fs - 1)) + fs;
    } else if (c == 'g') {
      if (pos >= len) return;
      pos += size_t{data[pos]} + 2;
    } else if (c == 'a') {
      // Arrays are skipped by their length rather than walked.
      pos = (pos + 3) & ~size_t{3};
      if (pos > len || 4 > len - pos) return;
      const uint32_t n = load_u32(data + pos, be);
      const size_t al = sig::alignment(sig[i + 1]);
      pos = ((pos + 4 + al - 1) & ~(al - 1)) + n;
    } else {
      // Structs, dict entries and variants have no length prefix: walk them.
      const detail::ValueContext ctx{data, be, h.unix_fds};
      if (detail::check_values(ctx, sig.substr(i, next_i - i), pos, len, 0)) return;
    }
    i = next_i;
  }
}

// ---- forwarding

void write_forward_header(const Header& h, std::string_view sender, std::vector<uint8_t>& out) {
  auto fields = [&h, sender](auto&& v) {
    if (h.has_path) v(kFieldPath, 'o', h.path, 0);
    if (h.has_interface) v(kFieldInterface, 's', h.interface, 0);
    if (h.has_member) v(kFieldMember, 's', h.member, 0);
    if (h.has_error_name) v(kFieldErrorName, 's', h.error_name, 0);
    if (h.has_reply_serial) v(kFieldReplySerial, 'u', std::string_view(), h.reply_serial);
    if (h.has_destination) v(kFieldDestination, 's', h.destination, 0);
    if (!sender.empty()) v(kFieldSender, 's', sender, 0);
    if (h.has_signature && !h.signature.empty()) v(kFieldSignature, 'g', h.signature, 0);
    if (h.unix_fds != 0) v(kFieldUnixFds, 'u', std::string_view(), h.unix_fds);
  };
  append_header(out, h.big_endian, static_cast<uint8_t>(h.type), h.flags, h.body_length, h.serial, fields,
                h.body_length);
}

// ---- Writer

namespace {

void body_align(std::vector<uint8_t>& b, size_t a) { b.resize((b.size() + a - 1) & ~(a - 1), 0); }

void body_u32(std::vector<uint8_t>& b, uint32_t v) {
  body_align(b, 4);
  const size_t at = b.size();
  b.resize(at + 4);
  store_u32(b.data() + at, v, false);
}

void body_string(std::vector<uint8_t>& b, std::string_view s) {
  body_u32(b, uint32_t(s.size()));
  b.insert(b.end(), s.begin(), s.end());
  b.push_back(0);
}

}  // namespace

Writer::Writer(MsgType type, uint32_t serial, uint8_t flags) : type_(type), serial_(serial), flags_(flags) {}

Writer& Writer::path(std::string_view v) { path_.assign(v); return *this; }
Writer& Writer::interface(std::string_view v) { interface_.assign(v); return *this; }
Writer& Writer::member(std::string_view v) { member_.assign(v); return *this; }
Writer& Writer::error_name(std::string_view v) { error_name_.assign(v); return *this; }
Writer& Writer::destination(std::string_view v) { destination_.assign(v); return *this; }
Writer& Writer::sender(std::string_view v) { sender_.assign(v); return *this; }
Writer& Writer::reply_serial(uint32_t v) {
  has_reply_serial_ = true;
  reply_serial_ = v;
  return *this;
}

Writer& Writer::add_string(std::string_view v) {
  body_string(body_, v);
  signature_ += 's';
  return *this;
}

Writer& Writer::add_object_path(std::string_view v) {
  body_string(body_, v);
  signature_ += 'o';
  return *this;
}

Writer& Writer::add_uint32(uint32_t v) {
  body_u32(body_, v);
  signature_ += 'u';
  return *this;
}

Writer& Writer::add_bool(bool v) {
  body_u32(body_, v ? 1 : 0);
  signature_ += 'b';
  return *this;
}

Writer& Writer::add_string_array(const std::vector<std::string_view>& v) {
  size_t bytes = 0;
  for (std::string_view s : v) bytes += 4 + s.size() + 1 + 3;
  body_.reserve(body_.size() + 4 + bytes);
  body_u32(body_, 0);
  const size_t len_at = body_.size() - 4;
  // Strings are 4-aligned, which the length already left us at.
  const size_t start = body_.size();
  for (std::string_view s : v) body_string(body_, s);
  store_u32(body_.data() + len_at, uint32_t(body_.size() - start), false);
  signature_ += "as";
  return *this;
}

std::vector<uint8_t> Writer::finish() const {
  auto fields = [this](auto&& v) {
    if (!path_.empty()) v(kFieldPath, 'o', path_, 0);
    if (!interface_.empty()) v(kFieldInterface, 's', interface_, 0);
    if (!member_.empty()) v(kFieldMember, 's', member_, 0);
    if (!error_name_.empty()) v(kFieldErrorName, 's', error_name_, 0);
    if (has_reply_serial_) v(kFieldReplySerial, 'u', std::string_view(), reply_serial_);
    if (!destination_.empty()) v(kFieldDestination, 's', destination_, 0);
    if (!sender_.empty()) v(kFieldSender, 's', sender_, 0);
    if (!signature_.empty()) v(kFieldSignature, 'g', signature_, 0);
  };
  std::vector<uint8_t> out;
  append_header(out, false, static_cast<uint8_t>(type_), flags_, uint32_t(body_.size()), serial_, fields,
                body_.size());
  out.insert(out.end(), body_.begin(), body_.end());
  return out;
}

}  // namespace wire
