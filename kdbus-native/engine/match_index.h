#pragma once
// An index over match rules that narrows a message down to the rules that
// could accept it, so that a broadcast does not cost a full evaluation of
// every rule on the bus, nor a visit to every connection that has rules: the
// bus keeps one index over the rules of all its peers (a monitor has its own
// for its filter). It only prunes: every rule it hands
// out must still go through rule_matches(), which alone decides.
//
// Rules are grouped by their shape: which exactly-compared fields they
// constrain (type, interface, member, path, sender by unique name, argN
// string equality) and, optionally, one namespace field (path_namespace or
// arg0namespace). Within a group a rule sits under the hash of its values;
// a message probes each group once per namespace prefix it has. A hash
// collision only adds a candidate, never hides one. Rules constraining none
// of those fields form the shape-less group, whose one bucket is scanned.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "match.h"
#include "message.h"

namespace kdbus {

class Connection;

// A rule as a connection holds it; the index points at it.
struct MatchEntry {
  uint64_t cookie = 0;
  Connection* conn = nullptr;
  MatchRule rule;
};

// The facts of one message (and its sender) the index looks at, hashed at
// most once per message (on first use: a unicast offered only to monitors
// without filters needs none) and shared by every holder it is offered to.
class MatchProbe {
 public:
  MatchProbe(const MatchView& view, ConnId sender);

  ConnId sender() const { return sender_id_; }

 private:
  friend class MatchIndex;
  struct ArgHash {
    uint8_t index;
    bool is_string;
    uint64_t hash;
    std::string_view value;
  };

  void prepare() const;
  const ArgHash* arg(uint8_t index) const;
  const std::vector<uint64_t>& path_prefixes() const;
  const std::vector<uint64_t>& arg0_prefixes() const;
  uint64_t sender_hash() const;

  const MatchView& view_;
  ConnId sender_id_;
  mutable bool prepared_ = false;
  mutable bool has_interface_ = false, has_member_ = false, has_path_ = false;
  mutable uint64_t interface_ = 0, member_ = 0, path_ = 0;
  mutable std::vector<ArgHash> args_;
  // Hashing the sender's unique name means spelling it out first.
  mutable bool sender_ready_ = false;
  mutable uint64_t sender_ = 0;
  // Namespaces a rule may name and still accept the message, hashed on
  // first use: most messages meet no holder with namespace rules.
  mutable bool path_prefixes_ready_ = false, arg0_prefixes_ready_ = false;
  mutable std::vector<uint64_t> path_prefixes_, arg0_prefixes_;
};

class MatchIndex {
 public:
  // The entry is known by its address, which must stay put until erase().
  void insert(const MatchEntry& entry);
  void erase(const MatchEntry& entry);
  void clear();

  // Calls visit(entry) for entries whose rule may accept the probed message
  // (every one that does among them) until visit returns true; says whether
  // one did.
  template <typename Visit>
  bool any_of(const MatchProbe& probe, Visit&& visit) const {
    for (const Group& g : groups_) {
      uint64_t base = 0;
      if (!probe_base(g.shape, probe, base)) continue;
      const std::vector<uint64_t>* prefixes = probe_prefixes(g.shape, probe);
      if (prefixes == nullptr) {
        if (visit_bucket(g, base, visit)) return true;
        continue;
      }
      for (uint64_t p : *prefixes) {
        if (visit_bucket(g, combine(base, p), visit)) return true;
      }
    }
    return false;
  }

 private:
  enum Field : uint8_t {
    kType = 1u << 0,
    kInterface = 1u << 1,
    kMember = 1u << 2,
    kPath = 1u << 3,
    kSender = 1u << 4,
  };
  enum class Prefix : uint8_t { None, PathNamespace, Arg0Namespace };

  struct Shape {
    uint8_t fields = 0;   // Field bits
    uint64_t args = 0;    // bit N: an argN string equality
    Prefix prefix = Prefix::None;
    bool operator==(const Shape& o) const { return fields == o.fields && args == o.args && prefix == o.prefix; }
  };

  struct Group {
    Shape shape;
    size_t size = 0;
    // One node per rule: a bucket of its own would cost a vector's block.
    std::unordered_multimap<uint64_t, const MatchEntry*> buckets;
  };

  static Shape shape_of(const MatchRule& rule);
  static uint64_t key_of(const Shape& shape, const MatchRule& rule);
  static uint64_t combine(uint64_t h, uint64_t v);
  // The hash of the message's values for the shape's exact fields; false
  // when the message lacks one of them, so no rule of the shape accepts it.
  static bool probe_base(const Shape& shape, const MatchProbe& probe, uint64_t& out);
  // The hashed namespaces a rule of the shape may name and accept the
  // message; nullptr for shapes without a namespace field.
  static const std::vector<uint64_t>* probe_prefixes(const Shape& shape, const MatchProbe& probe);

  template <typename Visit>
  static bool visit_bucket(const Group& g, uint64_t key, Visit& visit) {
    auto range = g.buckets.equal_range(key);
    for (auto it = range.first; it != range.second; ++it) {
      if (visit(*it->second)) return true;
    }
    return false;
  }

  std::vector<Group> groups_;
};

}  // namespace kdbus
