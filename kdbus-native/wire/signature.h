#pragma once
// The D-Bus type-signature grammar: which type codes exist, how they align,
// and how complete types are delimited inside a signature string.
#include <cstddef>
#include <string_view>

namespace wire::sig {

constexpr size_t kMaxSignatureLength = 255;
constexpr int kMaxArrayNesting = 32;
constexpr int kMaxStructNesting = 32;
constexpr int kMaxDictNesting = 32;

constexpr bool is_basic(char c) {
  switch (c) {
    case 'y': case 'b': case 'n': case 'q': case 'i': case 'u': case 'x': case 't':
    case 'd': case 'h': case 's': case 'o': case 'g':
      return true;
    default:
      return false;
  }
}

// Size of a fixed-size basic type (also its alignment), 0 for anything else.
constexpr size_t fixed_size(char c) {
  switch (c) {
    case 'y': return 1;
    case 'n': case 'q': return 2;
    case 'b': case 'i': case 'u': case 'h': return 4;
    case 'x': case 't': case 'd': return 8;
    default: return 0;
  }
}

// Alignment of a value whose type starts with code c.
constexpr size_t alignment(char c) {
  switch (c) {
    case 'y': case 'g': case 'v': return 1;
    case 'n': case 'q': return 2;
    case 'b': case 'i': case 'u': case 'h': case 's': case 'o': case 'a': return 4;
    case 'x': case 't': case 'd': case '(': case '{': return 8;
    default: return 1;
  }
}

// Number of complete types in s when s is a valid signature (length, type
// codes, balanced containers, nesting limits, non-empty structs, dict entries
// only as array elements with a basic key and exactly two members); -1 when
// it is not.
int count_complete_types(std::string_view s);

// True when s is exactly one valid complete type, the rule for a variant's
// signature. Single-character signatures, the common case, take a fast path.
inline bool is_single_complete_type(std::string_view s) {
  if (s.size() == 1) return is_basic(s[0]) || s[0] == 'v';
  return count_complete_types(s) == 1;
}

// For a signature already known to be valid: the index just past the
// complete type that starts at index i.
size_t complete_type_end(std::string_view s, size_t i);

}  // namespace wire::sig
