#include "validate.h"

namespace kdbus {
namespace {

bool is_alpha_(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Dot-separated elements: none empty, each made of [A-Za-z0-9_] plus '-'
// when `dash`, and not starting with a digit unless `digit_first`.
bool valid_elements(std::string_view s, bool dash, bool digit_first, size_t min_elements) {
  size_t elements = 0;
  size_t start = 0;
  while (true) {
    size_t end = s.find('.', start);
    std::string_view el = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (el.empty()) return false;
    if (!digit_first && is_digit(el[0])) return false;
    for (char c : el) {
      if (!(is_alpha_(c) || is_digit(c) || (dash && c == '-'))) return false;
    }
    ++elements;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return elements >= min_elements;
}

}  // namespace

bool valid_bus_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  if (s[0] == ':') return valid_elements(s.substr(1), true, true, 2);
  return valid_elements(s, true, false, 2);
}

bool valid_bus_namespace(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength || s[0] == ':') return false;
  return valid_elements(s, true, false, 1);
}

bool valid_interface_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  return valid_elements(s, false, false, 2);
}

bool valid_member_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength || is_digit(s[0])) return false;
  for (char c : s) {
    if (!(is_alpha_(c) || is_digit(c))) return false;
  }
  return true;
}

bool valid_object_path(std::string_view s) {
  if (s.empty() || s[0] != '/') return false;
  if (s.size() == 1) return true;
  if (s.back() == '/') return false;
  char prev = '/';
  for (size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == '/') {
      if (prev == '/') return false;
    } else if (!(is_alpha_(c) || is_digit(c))) {
      return false;
    }
    prev = c;
  }
  return true;
}

}  // namespace kdbus
