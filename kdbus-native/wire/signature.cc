#include "signature.h"

#include <cstdint>

namespace wire::sig {

namespace {

// One open container while scanning a signature: an array still waiting for
// its element type, or a struct / dict entry counting its members.
struct Open {
  char kind;  // 'a', '(' or '{'
  uint8_t members;
};

// Each open container is bounded by its own limit, so this many slots can
// never overflow.
constexpr size_t kMaxOpen = kMaxArrayNesting + kMaxStructNesting + kMaxDictNesting;

}  // namespace

int count_complete_types(std::string_view s) {
  if (s.size() > kMaxSignatureLength) return -1;
  Open stack[kMaxOpen];
  size_t top = 0;
  int arrays = 0, structs = 0, dicts = 0;
  int complete = 0;

  for (char c : s) {
    // The first member of a dict entry is its key, which must be basic.
    if (top > 0 && stack[top - 1].kind == '{' && stack[top - 1].members == 0 && !is_basic(c)) return -1;

    switch (c) {
      case 'a':
        if (++arrays > kMaxArrayNesting) return -1;
        stack[top++] = {'a', 0};
        continue;
      case '(':
        if (++structs > kMaxStructNesting) return -1;
        stack[top++] = {'(', 0};
        continue;
      case '{':
        if (top == 0 || stack[top - 1].kind != 'a') return -1;
        if (++dicts > kMaxDictNesting) return -1;
        stack[top++] = {'{', 0};
        continue;
      case ')':
        if (top == 0 || stack[top - 1].kind != '(' || stack[top - 1].members == 0) return -1;
        --top;
        --structs;
        break;
      case '}':
        if (top == 0 || stack[top - 1].kind != '{' || stack[top - 1].members != 2) return -1;
        --top;
        --dicts;
        break;
      default:
        if (!is_basic(c) && c != 'v') return -1;
        break;
    }

    // A complete type just ended: it completes every array waiting for an
    // element, then counts as one member of the enclosing container.
    while (top > 0 && stack[top - 1].kind == 'a') {
      --top;
      --arrays;
    }
    if (top == 0) {
      ++complete;
    } else {
      Open& o = stack[top - 1];
      if (o.kind == '{' && o.members == 2) return -1;
      ++o.members;
    }
  }
  if (top != 0) return -1;
  return complete;
}

size_t complete_type_end(std::string_view s, size_t i) {
  while (i < s.size() && s[i] == 'a') ++i;
  if (i >= s.size()) return s.size();
  char c = s[i];
  if (c != '(' && c != '{') return i + 1;
  int depth = 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '(' || s[i] == '{') {
      ++depth;
    } else if (s[i] == ')' || s[i] == '}') {
      if (--depth == 0) return i + 1;
    }
  }
  return s.size();
}

}  // namespace wire::sig
