#pragma once
// Interned strings for match rules: every distinct value (a sender, an
// interface, a member, a path, an arg value) is held once however many
// rules and connections name it, and two atoms are equal exactly when they
// are the same entry. An empty Atom stands for a field the rule leaves out,
// as std::optional<std::string> did, so "absent" and "" stay apart.
//
// The table is the process's and not thread-safe: the engine runs on one
// thread.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace kdbus {

class Atom {
 public:
  Atom() = default;
  explicit Atom(std::string_view s);
  Atom(const Atom& o) : entry_(o.entry_) { retain(); }
  Atom(Atom&& o) noexcept : entry_(std::exchange(o.entry_, nullptr)) {}
  Atom& operator=(const Atom& o) {
    Atom copy(o);
    swap(copy);
    return *this;
  }
  Atom& operator=(Atom&& o) noexcept {
    Atom moved(std::move(o));
    swap(moved);
    return *this;
  }
  Atom& operator=(std::string_view s) { return *this = Atom(s); }
  ~Atom() { release(); }

  void swap(Atom& o) noexcept { std::swap(entry_, o.entry_); }
  void reset() { Atom().swap(*this); }

  bool has_value() const { return entry_ != nullptr; }
  explicit operator bool() const { return has_value(); }
  // Only for an atom that has a value.
  const std::string& operator*() const { return entry_->first; }
  const std::string* operator->() const { return &entry_->first; }
  operator std::string_view() const { return entry_ != nullptr ? std::string_view(entry_->first) : std::string_view(); }

  bool operator==(const Atom& o) const { return entry_ == o.entry_; }
  bool operator!=(const Atom& o) const { return entry_ != o.entry_; }

  // Distinct values held now (tests and statistics).
  static size_t table_size();

 private:
  using Entry = std::pair<const std::string, size_t>;  // value, references
  void retain() {
    if (entry_ != nullptr) ++entry_->second;
  }
  void release();

  Entry* entry_ = nullptr;
};

}  // namespace kdbus
