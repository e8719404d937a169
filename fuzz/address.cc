// libFuzzer harness: D-Bus address lists (--address, <listen>). A list that
// parses, written back with every value escaped, parses to the same entries;
// any value survives escaping and unescaping.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../kdbus-native/wire/address.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "address %s: %.*s\n", what, int(text.size()), text.data());
  std::abort();
}

bool same(const std::vector<wire::AddressEntry>& a, const std::vector<wire::AddressEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].method != b[i].method || a[i].kv != b[i].kv) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  std::string unescaped;
  if (!wire::unescape_address_value(wire::escape_address_value(text), unescaped) || unescaped != text)
    fail("value does not survive escaping", text);

  std::vector<wire::AddressEntry> entries;
  std::string err;
  if (!wire::parse_addresses(text, entries, err)) {
    if (err.empty()) fail("refused without a reason", text);
    return 0;
  }
  std::string written;
  for (const auto& e : entries) {
    if (!written.empty()) written += ';';
    written += e.method + ':';
    for (size_t i = 0; i < e.kv.size(); ++i) {
      if (i != 0) written += ',';
      written += e.kv[i].first + '=' + wire::escape_address_value(e.kv[i].second);
    }
  }
  std::vector<wire::AddressEntry> again;
  if (!wire::parse_addresses(written, again, err)) fail(("written back does not parse (" + err + ")").c_str(), text);
  if (!same(entries, again)) fail("changed when written back", text);
  return 0;
}
