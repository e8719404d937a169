#include "atom.h"

#include <memory>
#include <unordered_map>

namespace kdbus {
namespace {

using Table = std::unordered_map<std::string, size_t>;

// Never destroyed: rules held by objects with static storage may let go of
// their atoms after static destructors have run.
Table& table() {
  static Table& t = *std::make_unique<Table>().release();
  return t;
}

}  // namespace

Atom::Atom(std::string_view s) {
  auto [it, added] = table().emplace(std::string(s), 0);
  (void)added;
  entry_ = &*it;
  ++entry_->second;
}

void Atom::release() {
  if (entry_ == nullptr) return;
  if (--entry_->second == 0) table().erase(table().find(entry_->first));
  entry_ = nullptr;
}

size_t Atom::table_size() { return table().size(); }

}  // namespace kdbus
