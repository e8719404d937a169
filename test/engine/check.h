#pragma once
// A tiny registry of named cases and CHECK macros that print file:line with
// both sides, so the suite needs nothing beyond the compiler.
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace enginetest {

struct Case {
  std::string group;
  std::string name;
  std::function<void()> fn;
};

// Cases run in the order registered: each file's in its order.
std::vector<Case>& registry();
struct Register {
  Register(std::string group, std::string name, std::function<void()> fn) {
    registry().push_back({std::move(group), std::move(name), std::move(fn)});
  }
};

// Failed checks of the running case; the runner reads and clears it.
std::vector<std::string>& failures();
void fail(const char* file, int line, const std::string& what);

std::string errno_name(int err);

inline std::string show(const std::string& s) { return "\"" + s + "\""; }
inline std::string show(std::string_view s) { return show(std::string(s)); }
inline std::string show(const char* s) { return show(std::string(s)); }
inline std::string show(bool b) { return b ? "true" : "false"; }
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
std::string show(T v) {
  std::ostringstream o;
  o << +v;
  return o.str();
}
inline std::string show(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ",\n      " : "") + show(v[i]);
  return s + "]";
}
template <typename T>
std::string show(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + show(v[i]);
  return s + "]";
}

template <typename A, typename B>
bool check_eq(const A& a, const B& b, const char* ta, const char* tb, const char* file, int line) {
  if (a == b) return true;
  fail(file, line, std::string(ta) + " == " + tb + "\n    got:  " + show(a) + "\n    want: " + show(b));
  return false;
}

inline bool check_err(int got, int want, const char* expr, const char* file, int line) {
  if (got == want) return true;
  fail(file, line, std::string(expr) + "\n    got:  " + errno_name(got) + "\n    want: " + errno_name(want));
  return false;
}

}  // namespace enginetest

#define ENGINE_CAT2(a, b) a##b
#define ENGINE_CAT(a, b) ENGINE_CAT2(a, b)
#define TEST(group, name)                                                                        \
  static void ENGINE_CAT(test_, __LINE__)();                                                     \
  static ::enginetest::Register ENGINE_CAT(reg_, __LINE__)(#group, name, &ENGINE_CAT(test_, __LINE__)); \
  static void ENGINE_CAT(test_, __LINE__)()

#define CHECK(cond) \
  ((cond) ? true : (::enginetest::fail(__FILE__, __LINE__, "CHECK(" #cond ")"), false))
#define CHECK_EQ(a, b) ::enginetest::check_eq((a), (b), #a, #b, __FILE__, __LINE__)
// A command's errno result (0 for success).
#define CHECK_ERR(expr, want) ::enginetest::check_err((expr), (want), #expr, __FILE__, __LINE__)
// Stops the case: what follows depends on it.
#define REQUIRE(cond) \
  do {                \
    if (!CHECK(cond)) return; \
  } while (0)
#define REQUIRE_ERR(expr, want) \
  do {                          \
    if (!CHECK_ERR(expr, want)) return; \
  } while (0)
