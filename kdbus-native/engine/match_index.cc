#include "match_index.h"

#include <algorithm>
#include <functional>
#include <string>

namespace kdbus {
namespace {

uint64_t hash_str(std::string_view s) { return std::hash<std::string_view>{}(s); }

// A rule's sender can be keyed only when the rule accepts exactly the
// connection of that unique name: a well-known name's owner changes without
// the rule changing, and the bus's own name only ever matches the bus.
bool keyable_sender(const MatchRule& rule) {
  if (!rule.sender || rule.sender->empty() || (*rule.sender)[0] != ':') return false;
  ConnId id = 0;
  return parse_unique_name(*rule.sender, id) && unique_name(id) == *rule.sender;
}

}  // namespace

MatchProbe::MatchProbe(const MatchView& view, ConnId sender) : view_(view), sender_id_(sender) {}

void MatchProbe::prepare() const {
  if (prepared_) return;
  prepared_ = true;
  has_interface_ = !view_.interface.empty();
  has_member_ = !view_.member.empty();
  has_path_ = !view_.path.empty();
  if (has_interface_) interface_ = hash_str(view_.interface);
  if (has_member_) member_ = hash_str(view_.member);
  if (has_path_) path_ = hash_str(view_.path);
  args_.reserve(view_.args.size());
  for (const MatchView::Arg& a : view_.args) args_.push_back(ArgHash{a.index, a.type == 's', hash_str(a.value), a.value});
}

uint64_t MatchProbe::sender_hash() const {
  if (!sender_ready_) {
    sender_ready_ = true;
    sender_ = hash_str(unique_name(sender_id_));
  }
  return sender_;
}

// The first arg with that index, as rule evaluation finds it.
const MatchProbe::ArgHash* MatchProbe::arg(uint8_t index) const {
  for (const ArgHash& a : args_) {
    if (a.index == index) return &a;
  }
  return nullptr;
}

const std::vector<uint64_t>& MatchProbe::path_prefixes() const {
  if (!path_prefixes_ready_) {
    path_prefixes_ready_ = true;
    std::string_view p = view_.path;
    if (!p.empty()) {
      // "/" accepts any path; a longer namespace the path itself or an
      // ancestor of it, cut at a '/'.
      path_prefixes_.push_back(hash_str("/"));
      for (size_t k = 2; k <= p.size(); ++k) {
        if (k == p.size() || p[k] == '/') path_prefixes_.push_back(hash_str(p.substr(0, k)));
      }
    }
  }
  return path_prefixes_;
}

const std::vector<uint64_t>& MatchProbe::arg0_prefixes() const {
  if (!arg0_prefixes_ready_) {
    arg0_prefixes_ready_ = true;
    prepare();
    const ArgHash* a = arg(0);
    if (a != nullptr && a->is_string) {
      std::string_view v = a->value;
      for (size_t k = 0; k <= v.size(); ++k) {
        if (k == v.size() || v[k] == '.') arg0_prefixes_.push_back(hash_str(v.substr(0, k)));
      }
    }
  }
  return arg0_prefixes_;
}

uint64_t MatchIndex::combine(uint64_t h, uint64_t v) {
  // splitmix64's finaliser over the running hash and the next value.
  uint64_t z = h + 0x9e3779b97f4a7c15ull + v;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

MatchIndex::Shape MatchIndex::shape_of(const MatchRule& rule) {
  Shape s;
  if (rule.type != 0) s.fields |= kType;
  if (rule.interface) s.fields |= kInterface;
  if (rule.member) s.fields |= kMember;
  if (rule.path) s.fields |= kPath;
  if (keyable_sender(rule)) s.fields |= kSender;
  for (const MatchRule::Arg& a : rule.args) {
    if (!a.is_path && a.index < 64) s.args |= uint64_t{1} << a.index;
  }
  if (rule.path_namespace) {
    s.prefix = Prefix::PathNamespace;
  } else if (rule.arg0namespace) {
    s.prefix = Prefix::Arg0Namespace;
  }
  return s;
}

// Must hash the same values in the same order as probe_base() and
// any_of() do for a message the rule accepts.
uint64_t MatchIndex::key_of(const Shape& shape, const MatchRule& rule) {
  uint64_t h = 0;
  if (shape.fields & kType) h = combine(h, rule.type);
  if (shape.fields & kInterface) h = combine(h, hash_str(*rule.interface));
  if (shape.fields & kMember) h = combine(h, hash_str(*rule.member));
  if (shape.fields & kPath) h = combine(h, hash_str(*rule.path));
  if (shape.fields & kSender) h = combine(h, hash_str(*rule.sender));
  for (uint64_t bits = shape.args; bits != 0; bits &= bits - 1) {
    const auto index = static_cast<uint8_t>(__builtin_ctzll(bits));
    auto a = std::find_if(rule.args.begin(), rule.args.end(),
                          [&](const MatchRule::Arg& x) { return !x.is_path && x.index == index; });
    h = combine(h, hash_str(*a->value));
  }
  if (shape.prefix == Prefix::PathNamespace) {
    // Evaluation lets a namespace of at most one character accept every
    // path, which is what "/" stands for among the probed prefixes.
    const std::string& ns = *rule.path_namespace;
    h = combine(h, hash_str(ns.size() > 1 ? std::string_view(ns) : std::string_view("/")));
  } else if (shape.prefix == Prefix::Arg0Namespace) {
    h = combine(h, hash_str(*rule.arg0namespace));
  }
  return h;
}

bool MatchIndex::probe_base(const Shape& shape, const MatchProbe& probe, uint64_t& out) {
  probe.prepare();
  uint64_t h = 0;
  if (shape.fields & kType) h = combine(h, probe.view_.type);
  if (shape.fields & kInterface) {
    if (!probe.has_interface_) return false;
    h = combine(h, probe.interface_);
  }
  if (shape.fields & kMember) {
    if (!probe.has_member_) return false;
    h = combine(h, probe.member_);
  }
  if (shape.fields & kPath) {
    if (!probe.has_path_) return false;
    h = combine(h, probe.path_);
  }
  if (shape.fields & kSender) {
    // What the bus sends itself is never from a unique name.
    if (probe.sender_id_ == kIdBus) return false;
    h = combine(h, probe.sender_hash());
  }
  for (uint64_t bits = shape.args; bits != 0; bits &= bits - 1) {
    const auto index = static_cast<uint8_t>(__builtin_ctzll(bits));
    const MatchProbe::ArgHash* a = probe.arg(index);
    if (a == nullptr || !a->is_string) return false;
    h = combine(h, a->hash);
  }
  out = h;
  return true;
}

const std::vector<uint64_t>* MatchIndex::probe_prefixes(const Shape& shape, const MatchProbe& probe) {
  switch (shape.prefix) {
    case Prefix::PathNamespace: return &probe.path_prefixes();
    case Prefix::Arg0Namespace: return &probe.arg0_prefixes();
    case Prefix::None: break;
  }
  return nullptr;
}

void MatchIndex::insert(const MatchEntry& entry) {
  const Shape shape = shape_of(entry.rule);
  auto g = std::find_if(groups_.begin(), groups_.end(), [&](const Group& x) { return x.shape == shape; });
  if (g == groups_.end()) {
    groups_.push_back(Group{shape, 0, {}});
    g = groups_.end() - 1;
  }
  g->buckets.emplace(key_of(shape, entry.rule), &entry);
  ++g->size;
}

void MatchIndex::erase(const MatchEntry& entry) {
  const Shape shape = shape_of(entry.rule);
  auto g = std::find_if(groups_.begin(), groups_.end(), [&](const Group& x) { return x.shape == shape; });
  if (g == groups_.end()) return;
  auto range = g->buckets.equal_range(key_of(shape, entry.rule));
  auto it = std::find_if(range.first, range.second, [&](const auto& kv) { return kv.second == &entry; });
  if (it == range.second) return;
  g->buckets.erase(it);
  if (--g->size == 0) groups_.erase(g);
}

void MatchIndex::clear() { groups_.clear(); }

}  // namespace kdbus
