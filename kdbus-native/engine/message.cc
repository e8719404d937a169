#include "message.h"

namespace kdbus {

std::string unique_name(ConnId id) { return ":1." + std::to_string(id - 1); }

bool parse_unique_name(std::string_view name, ConnId& id) {
  constexpr std::string_view prefix = ":1.";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  std::string_view digits = name.substr(prefix.size());
  // Exactly the spelling unique_name() produces: no sign, no leading zeros.
  if (digits.size() > 1 && digits[0] == '0') return false;
  uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return false;
    n = n * 10 + d;
  }
  // ids run from 1 and kDstBroadcast is not an id.
  if (n >= UINT64_MAX - 1) return false;
  id = n + 1;
  return true;
}

}  // namespace kdbus
