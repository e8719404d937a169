// Runs the registered cases (those whose "group/name" contains the first
// argument, when given) and ends with "N passed, M failed".
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "check.h"

namespace enginetest {

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

std::vector<std::string>& failures() {
  static std::vector<std::string> f;
  return f;
}

void fail(const char* file, int line, const std::string& what) {
  const char* base = std::strrchr(file, '/');
  failures().push_back(std::string(base ? base + 1 : file) + ":" + std::to_string(line) + ": " + what);
}

std::string errno_name(int err) {
  if (err == 0) return "0";
  const char* n = strerrorname_np(err);
  return n ? n : std::to_string(err);
}

}  // namespace enginetest

int main(int argc, char** argv) {
  using namespace enginetest;
  const std::string filter = argc > 1 ? argv[1] : "";
  const bool list = filter == "--list";
  int passed = 0, failed = 0;
  for (const Case& c : registry()) {
    const std::string full = c.group + "/" + c.name;
    if (list) {
      std::printf("%s\n", full.c_str());
      continue;
    }
    if (!filter.empty() && full.find(filter) == std::string::npos) continue;
    failures().clear();
    try {
      c.fn();
    } catch (const std::exception& e) {
      failures().push_back(std::string("exception: ") + e.what());
    }
    if (failures().empty()) {
      ++passed;
      continue;
    }
    ++failed;
    std::printf("FAIL %s\n", full.c_str());
    for (const std::string& f : failures()) std::printf("  %s\n", f.c_str());
  }
  if (list) return 0;
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
