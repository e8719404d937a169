// Name and path syntax from the D-Bus specification's "Valid Names" rules.
#include "message.h"
#include "signature.h"

#include <cstdint>

namespace wire {

namespace {

constexpr size_t kMaxNameLength = 255;

// Character classes by table: names are checked on every message, and a
// lookup per byte beats a chain of range comparisons.
enum : uint8_t { kAlpha = 1, kDigit = 2, kHyphen = 4 };

struct CharClasses {
  uint8_t c[256] = {};
  constexpr CharClasses() {
    for (int k = 'A'; k <= 'Z'; ++k) c[k] = kAlpha;
    for (int k = 'a'; k <= 'z'; ++k) c[k] = kAlpha;
    c[int('_')] = kAlpha;
    for (int k = '0'; k <= '9'; ++k) c[k] = kDigit;
    c[int('-')] = kHyphen;
  }
};
constexpr CharClasses kClasses;

inline uint8_t cls(char c) { return kClasses.c[static_cast<uint8_t>(c)]; }
inline bool is_digit(char c) { return cls(c) == kDigit; }

// Dot-separated names (interfaces, error names, bus names) share one shape;
// they differ in whether '-' is allowed and whether an element may start
// with a digit.
bool valid_dotted(std::string_view s, bool allow_hyphen, bool allow_leading_digit) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  size_t elements = 1;
  bool at_element_start = true;
  for (char c : s) {
    if (c == '.') {
      if (at_element_start) return false;  // empty element
      ++elements;
      at_element_start = true;
      continue;
    }
    const uint8_t k = cls(c);
    const uint8_t allowed =
        kAlpha | (allow_hyphen ? kHyphen : 0) | ((allow_leading_digit || !at_element_start) ? kDigit : 0);
    if (!(k & allowed)) return false;
    at_element_start = false;
  }
  return !at_element_start && elements >= 2;
}

}  // namespace

bool valid_well_known_name(std::string_view s) {
  return valid_dotted(s, /*allow_hyphen=*/true, /*allow_leading_digit=*/false);
}

bool valid_bus_name(std::string_view s) {
  if (!s.empty() && s[0] == ':') {
    // The ':' counts towards the length limit.
    if (s.size() > kMaxNameLength) return false;
    return valid_dotted(s.substr(1), /*allow_hyphen=*/true, /*allow_leading_digit=*/true);
  }
  return valid_well_known_name(s);
}

bool valid_interface_name(std::string_view s) {
  return valid_dotted(s, /*allow_hyphen=*/false, /*allow_leading_digit=*/false);
}

bool valid_member_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  if (is_digit(s[0])) return false;
  for (char c : s) {
    if (!(cls(c) & (kAlpha | kDigit))) return false;
  }
  return true;
}

bool valid_object_path(std::string_view s) {
  if (s.empty() || s[0] != '/') return false;
  if (s.size() == 1) return true;
  bool after_slash = true;
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == '/') {
      if (after_slash) return false;  // empty element
      after_slash = true;
    } else if (cls(c) & (kAlpha | kDigit)) {
      after_slash = false;
    } else {
      return false;
    }
  }
  return !after_slash;  // no trailing slash
}

bool valid_signature(std::string_view s) { return sig::count_complete_types(s) >= 0; }

}  // namespace wire
