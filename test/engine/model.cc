// Model-based test: random sequences of commands (connections coming and
// going, names, match rules, calls, replies, signals, deadlines, receives)
// run against the engine and against the small reference model below, which
// keeps everything in plain maps and evaluates rules exactly. Every result
// (errno, return flags, what RECV gives, LIST, stats) must agree.
//
//   model [--seed N] [--steps M] [--seconds S] [--verbose]
//
// Runs seed N (default 1) for M steps (default 3000); with --seconds,
// further seeds N+1, N+2... until the time is up. A disagreement prints the
// seed and step and how to replay it (--verbose prints every command).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../../kdbus-native/engine/bus.h"
#include "../../kdbus-native/engine/snapshot.h"
#include "describe.h"
#include "handed_over.h"

using namespace kdbus;

namespace {

constexpr size_t kMaxWaits = 3;   // per caller
constexpr size_t kMaxQueue = 8;   // messages per receiver
const char* const kNames[] = {"org.m.A", "org.m.B", "org.m.C"};
const char* const kMembers[] = {"Ma", "Mb"};
const char* const kPaths[] = {"/a", "/b"};
const char* const kArgs[] = {"x", "y", "org.m.A"};

// ---- the reference model -------------------------------------------------

struct Rule {
  std::optional<uint8_t> type;
  std::optional<std::string> member, sender, path, arg0;
  std::string text() const {
    std::string t;
    auto add = [&](const char* k, const std::string& v) { t += (t.empty() ? "" : ",") + std::string(k) + "='" + v + "'"; };
    if (type) add("type", *type == 4 ? "signal" : "method_call");
    if (member) add("member", *member);
    if (sender) add("sender", *sender);
    if (path) add("path", *path);
    if (arg0) add("arg0", *arg0);
    return t;
  }
};

// A broadcast as rules see it.
struct Sig {
  std::string sender;  // unique name, or org.freedesktop.DBus
  ConnId sender_id = 0;
  std::string member, path;
  std::optional<std::string> arg0;
};

struct Entry {
  std::string text;  // as describe() writes it
  int64_t priority = 0;
  uint64_t seq = 0;
  // A call queued at an activator: what the name's owner takes over.
  std::string dst_name;
  ConnId src = 0;
  uint64_t cookie = 0;
  bool expect = false;
};

struct MConn {
  std::deque<Entry> queue;
  std::vector<std::pair<uint64_t, Rule>> rules;
  uint64_t next_cookie = 1;
  std::vector<uint64_t> sent_calls;  // cookies it sent with EXPECT_REPLY
  // Sees a copy of everything ([E]); invisible, may not send or own names.
  bool monitor = false;
  // Stands in for a name nobody owns; may only answer what queued at it.
  bool activator = false;
  // Calls that woke it, held back from monitors until shown (the texts
  // without roles).
  std::vector<Entry> unobserved;
  // After BYEBYE: no names, nothing new but replies to its own calls and
  // what concerns it as a name's old owner; still there until it disconnects.
  bool closing = false;
};

struct Owner {
  ConnId id;
  uint64_t flags;
};

struct Wait {
  uint64_t deadline = 0;
  uint64_t order = 0;
};

class Model {
 public:
  std::map<ConnId, MConn> conns;
  std::map<std::string, std::deque<Owner>> names;
  std::map<std::string, ConnId> activators;
  ConnId next_hidden = kDstBroadcast - 1;
  std::map<ConnId, std::vector<std::string>> joined;
  std::map<std::tuple<ConnId, ConnId, uint64_t>, Wait> waits;  // caller, callee, cookie
  ConnId next_id = 1;
  uint64_t seq = 0, order = 0, messages_sent = 0;

  ConnId primary(const std::string& name) const {
    auto it = names.find(name);
    return it == names.end() || it->second.empty() ? 0 : it->second.front().id;
  }

  bool matches(const Rule& r, const Sig& s) const {
    if (r.type && *r.type != 4) return false;
    if (r.member && *r.member != s.member) return false;
    if (r.path && *r.path != s.path) return false;
    if (r.arg0 && (!s.arg0 || *r.arg0 != *s.arg0)) return false;
    if (r.sender) {
      if (s.sender_id == 0) return *r.sender == "org.freedesktop.DBus";
      if (*r.sender != s.sender && primary(*r.sender) != s.sender_id) return false;
    }
    return true;
  }
  bool any_rule(const MConn& c, const Sig& s) const {
    if (c.monitor || c.activator) return false;
    for (const auto& [cookie, r] : c.rules) {
      if (matches(r, s)) return true;
    }
    return false;
  }

  void push(ConnId id, std::string text, int64_t prio, uint64_t s) { conns[id].queue.push_back(Entry{std::move(text), prio, s, "", 0, 0, false}); }
  bool is_monitor(ConnId id) const {
    auto it = conns.find(id);
    return it != conns.end() && it->second.monitor;
  }
  bool is_activator(ConnId id) const {
    auto it = conns.find(id);
    return it != conns.end() && it->second.activator;
  }
  bool is_peer(ConnId id) const { return conns.count(id) && !is_monitor(id) && !is_activator(id); }
  bool any_monitor() const {
    for (auto& [id, c] : conns) {
      if (c.monitor) return true;
    }
    return false;
  }
  // `text` without its roles. What the bus says itself reaches monitors
  // whatever their queues hold; copies of what peers send only if it fits.
  void to_monitors(const std::string& text, int64_t prio, uint64_t s, bool bounded) {
    for (auto& [id, c] : conns) {
      if (c.monitor && (!bounded || c.queue.size() < kMaxQueue)) push(id, text + " [E]", prio, s);
    }
  }

  // NameOwnerChanged and its NameLost/NameAcquired roles.
  void owner_change(const std::string& kind_text, const std::string& name, ConnId old_id, ConnId new_id) {
    const uint64_t s = ++seq;
    Sig sig{"org.freedesktop.DBus", 0, "NameOwnerChanged", "/org/freedesktop/DBus", name};
    for (auto& [id, c] : conns) {
      if (c.monitor) {
        push(id, kind_text + " [E]", 0, s);
        continue;
      }
      std::string roles;
      if (id == old_id) roles += "O";
      if (c.closing && roles.empty()) continue;
      if (any_rule(c, sig)) roles = roles + "M";
      if (id == new_id) roles += "N";
      // describe() writes the roles in the order A M E O N.
      std::string ordered;
      for (char ch : std::string("AMEON")) {
        if (roles.find(ch) != std::string::npos) ordered += ch;
      }
      if (!ordered.empty()) push(id, kind_text + " [" + ordered + "]", 0, s);
    }
  }
  void transfer(const std::string& name, ConnId old_id, ConnId new_id) {
    std::string t;
    if (old_id == 0) t = "NameAdd " + name + " " + unique_name(new_id);
    else if (new_id == 0) t = "NameRemove " + name + " " + unique_name(old_id);
    else t = "NameChange " + name + " " + unique_name(old_id) + " " + unique_name(new_id);
    owner_change(t, name, old_id, new_id);
  }

  void join(ConnId id, const std::string& n) { joined[id].push_back(n); }
  void leave(ConnId id, const std::string& n) {
    auto& v = joined[id];
    v.erase(std::remove(v.begin(), v.end(), n), v.end());
  }
  static std::deque<Owner>::iterator find(std::deque<Owner>& q, ConnId id) {
    return std::find_if(q.begin(), q.end(), [&](const Owner& o) { return o.id == id; });
  }

  int hello_activator(ConnId& id, const std::string& name) {
    if (activators.count(name)) return EEXIST;
    id = next_hidden--;
    conns[id].activator = true;
    activators[name] = id;
    return 0;
  }

  void show_unobserved(ConnId act) {
    std::vector<Entry> held;
    held.swap(conns[act].unobserved);
    for (const Entry& e : held) to_monitors(e.text, e.priority, e.seq, true);
  }

  // The name got its first owner: what queued at its activator moves over,
  // with the reply waits of those calls.
  void hand_over(const std::string& name, ConnId owner) {
    auto a = activators.find(name);
    if (a == activators.end()) return;
    const ConnId act = a->second;
    show_unobserved(act);
    auto& q = conns[act].queue;
    for (auto it = q.begin(); it != q.end();) {
      if (it->dst_name != name) {
        ++it;
        continue;
      }
      if (it->expect) {
        auto w = waits.find({it->src, act, it->cookie});
        if (w != waits.end()) {
          Wait kept = w->second;
          waits.erase(w);
          waits[{it->src, owner, it->cookie}] = kept;
        }
      }
      conns[owner].queue.push_back(*it);
      it = q.erase(it);
    }
  }

  int hello(ConnId& id, bool monitor) {
    id = next_id++;
    conns[id].monitor = monitor;
    if (!monitor) owner_change("IdAdd " + unique_name(id), unique_name(id), 0, 0);
    return 0;
  }

  int disconnect(ConnId id) {
    if (!conns.count(id)) return ENXIO;
    if (is_monitor(id)) {
      conns.erase(id);
      return 0;
    }
    if (is_activator(id)) {
      conns.erase(id);
      for (auto it = activators.begin(); it != activators.end();) it = it->second == id ? activators.erase(it) : std::next(it);
      reply_dead(id);
      return 0;
    }
    conns.erase(id);
    drop_waits_of(id);
    release_all(id);
    reply_dead(id);
    owner_change("IdRemove " + unique_name(id), unique_name(id), 0, 0);
    return 0;
  }

  void drop_waits_of(ConnId caller) {
    for (auto it = waits.begin(); it != waits.end();) it = std::get<0>(it->first) == caller ? waits.erase(it) : std::next(it);
  }

  // The most recently joined name first.
  void release_all(ConnId id) {
    std::vector<std::string> mine = joined[id];
    joined.erase(id);
    for (auto n = mine.rbegin(); n != mine.rend(); ++n) {
      auto& q = names[*n];
      auto pos = find(q, id);
      const bool was_primary = pos == q.begin();
      q.erase(pos);
      if (was_primary) transfer(*n, id, q.empty() ? 0 : q.front().id);
      if (q.empty()) names.erase(*n);
    }
  }

  // Still a peer while it lets go: it hears NameLost for its names and for
  // its unique name, then sees everything.
  int become_monitor(ConnId id) {
    if (!conns.count(id)) return ENXIO;
    if (is_monitor(id) || is_activator(id) || conns[id].closing) return EPERM;
    drop_waits_of(id);
    conns[id].rules.clear();
    release_all(id);
    reply_dead(id);
    owner_change("IdRemove " + unique_name(id), unique_name(id), id, 0);
    conns[id].monitor = true;
    return 0;
  }

  // Every call waiting on `id` fails, in the order they were made.
  void reply_dead(ConnId id) {
    std::vector<std::pair<uint64_t, std::tuple<ConnId, ConnId, uint64_t>>> dead;
    for (auto& [k, w] : waits) {
      if (std::get<1>(k) == id) dead.push_back({w.order, k});
    }
    std::sort(dead.begin(), dead.end());
    for (auto& [o, k] : dead) {
      waits.erase(k);
      const std::string t = "ReplyDead r=" + std::to_string(std::get<2>(k)) + " " + unique_name(id);
      push(std::get<0>(k), t + " [A]", 0, ++seq);
      to_monitors(t, 0, seq, false);
    }
  }

  int byebye(ConnId id) {
    if (!conns.count(id)) return ENXIO;
    if (is_monitor(id) || is_activator(id)) return EPERM;
    if (conns[id].closing) return EALREADY;
    if (!conns[id].queue.empty()) return EBUSY;
    conns[id].closing = true;
    release_all(id);
    return 0;
  }

  int acquire(ConnId id, const std::string& name, uint64_t flags, uint64_t& rf) {
    rf = 0;
    if (!conns.count(id)) return ENXIO;
    if (is_monitor(id) || is_activator(id) || conns[id].closing) return EPERM;
    flags &= kNameReplaceExisting | kNameAllowReplacement | kNameQueue;
    auto& q = names[name];
    if (q.empty()) {
      q.push_back({id, flags});
      join(id, name);
      transfer(name, 0, id);
      hand_over(name, id);
      rf = kNameAcquired | kNamePrimary;
      return 0;
    }
    if (q.front().id == id) {
      q.front().flags = flags;
      rf = kNamePrimary;
      return EALREADY;
    }
    const bool queue = flags & kNameQueue, replace = flags & kNameReplaceExisting;
    const bool allowed = q.front().flags & kNameAllowReplacement;
    auto pos = find(q, id);
    if (!queue && !(replace && allowed)) {
      if (pos != q.end()) {
        q.erase(pos);
        leave(id, name);
      }
      return EEXIST;
    }
    if (pos == q.end()) {
      if (replace) q.insert(q.begin() + 1, Owner{id, flags});
      else q.push_back({id, flags});
      join(id, name);
    } else {
      pos->flags = flags;
      if (replace && pos != q.begin() + 1) {
        Owner o = *pos;
        q.erase(pos);
        q.insert(q.begin() + 1, o);
      }
    }
    if (!replace || !allowed) {
      rf = kNameInQueue;
      return 0;
    }
    Owner old = q.front();
    q.pop_front();
    if (old.flags & kNameQueue) q.insert(q.begin() + 1, old);
    else leave(old.id, name);
    transfer(name, old.id, id);
    rf = kNameAcquired | kNamePrimary;
    return 0;
  }

  int release(ConnId id, const std::string& name) {
    if (!conns.count(id)) return ENXIO;
    if (is_monitor(id) || is_activator(id)) return EPERM;
    auto it = names.find(name);
    if (it == names.end()) return ESRCH;
    auto& q = it->second;
    auto pos = find(q, id);
    if (pos == q.end()) return EADDRINUSE;
    const bool was_primary = pos == q.begin();
    q.erase(pos);
    leave(id, name);
    if (was_primary) transfer(name, id, q.empty() ? 0 : q.front().id);
    if (q.empty()) names.erase(it);
    return 0;
  }

  int match_add(ConnId id, uint64_t cookie, const Rule& r) {
    if (!conns.count(id)) return ENXIO;
    conns[id].rules.push_back({cookie, r});
    return 0;
  }
  int match_remove(ConnId id, uint64_t cookie) {
    if (!conns.count(id)) return ENXIO;
    auto& v = conns[id].rules;
    const size_t before = v.size();
    v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& e) { return e.first == cookie; }), v.end());
    return v.size() == before ? EBADSLT : 0;
  }

  // dst: an id (by_name empty) or a name.
  int call(ConnId from, ConnId dst_id, const std::string& by_name, bool expect, bool no_auto_start, int64_t prio,
           uint64_t deadline, uint64_t& cookie) {
    if (!conns.count(from)) return ENXIO;
    if (is_monitor(from) || is_activator(from)) return EPERM;
    ConnId dst = dst_id;
    if (!by_name.empty()) {
      ConnId u = 0;
      if (by_name[0] == ':') {
        if (!parse_unique_name(by_name, u) || !is_peer(u)) return ESRCH;
        dst = u;
      } else {
        dst = primary(by_name);
        if (dst == 0) {
          auto a = activators.find(by_name);
          if (a == activators.end()) return ESRCH;
          if (no_auto_start) return EADDRNOTAVAIL;
          dst = a->second;
        }
      }
    } else if (!is_peer(dst)) {
      return ENXIO;
    }
    if (conns[dst].closing) return ENXIO;
    if (conns[dst].queue.size() >= kMaxQueue) return ENOBUFS;
    MConn& src = conns[from];
    cookie = src.next_cookie;
    if (expect) {
      size_t mine = 0;
      for (auto& [k, w] : waits) mine += std::get<0>(k) == from;
      if (mine >= kMaxWaits) return EMLINK;
      waits[{from, dst, cookie}] = Wait{deadline, ++order};
      src.sent_calls.push_back(cookie);
    }
    ++src.next_cookie;
    std::string t = "call " + unique_name(from) + " c=" + std::to_string(cookie) + " Ma";
    if (prio) t += " p=" + std::to_string(prio);
    MConn& d = conns[dst];
    const bool defer = d.activator && (d.queue.empty() || !d.unobserved.empty());
    d.queue.push_back({t + " [A]", prio, ++seq, d.activator ? by_name : "", from, cookie, expect});
    if (!any_monitor()) {
      // nobody to show it to
    } else if (defer) {
      d.unobserved.push_back(Entry{t, prio, seq, "", 0, 0, false});
    } else {
      to_monitors(t, prio, seq, true);
    }
    ++messages_sent;
    return 0;
  }

  int reply(ConnId from, ConnId to, uint64_t reply_cookie, uint64_t& cookie) {
    if (!conns.count(from)) return ENXIO;
    if (is_monitor(from)) return EPERM;  // an activator may answer
    if (!is_peer(to)) return ENXIO;
    auto it = waits.find({to, from, reply_cookie});
    if (it == waits.end()) return conns[to].closing ? ENXIO : EPERM;
    if (conns[to].queue.size() >= kMaxQueue) return ENOBUFS;
    waits.erase(it);
    cookie = conns[from].next_cookie++;
    const std::string t = "return " + unique_name(from) + " c=" + std::to_string(cookie) + " r=" + std::to_string(reply_cookie);
    push(to, t + " [A]", 0, ++seq);
    to_monitors(t, 0, seq, true);
    ++messages_sent;
    return 0;
  }

  int signal(ConnId from, const Sig& s, uint64_t& cookie) {
    if (!conns.count(from)) return ENXIO;
    if (is_monitor(from) || is_activator(from)) return EPERM;
    cookie = conns[from].next_cookie++;
    const uint64_t sq = ++seq;
    const std::string t = "signal " + unique_name(from) + " c=" + std::to_string(cookie) + " " + s.member;
    for (auto& [id, c] : conns) {
      if (c.closing || (!c.monitor && !any_rule(c, s))) continue;
      if (c.queue.size() >= kMaxQueue) continue;  // the overflow is the listener's business
      push(id, t + (c.monitor ? " [E]" : " [M]"), 0, sq);
    }
    ++messages_sent;
    return 0;
  }

  int expire(uint64_t now) {
    std::vector<std::tuple<uint64_t, ConnId, ConnId, uint64_t>> due;
    for (auto& [k, w] : waits) {
      if (w.deadline != 0 && w.deadline <= now) due.push_back({w.deadline, std::get<0>(k), std::get<1>(k), std::get<2>(k)});
    }
    std::sort(due.begin(), due.end());
    for (auto& [d, caller, callee, cookie] : due) {
      waits.erase({caller, callee, cookie});
      const std::string t = "ReplyTimeout r=" + std::to_string(cookie) + " " + unique_name(callee);
      push(caller, t + " [A]", 0, ++seq);
      to_monitors(t, 0, seq, false);
    }
    return static_cast<int>(due.size());
  }

  int recv(ConnId id, bool peek, bool use_prio, int64_t bound, Entry& out) {
    if (!conns.count(id)) return ENXIO;
    auto& q = conns[id].queue;
    if (q.empty()) return EAGAIN;
    auto pick = q.begin();
    if (use_prio) {
      pick = q.end();
      for (auto it = q.begin(); it != q.end(); ++it) {
        if (it->priority > bound) continue;
        if (pick == q.end() || it->priority < pick->priority) pick = it;
      }
      if (pick == q.end()) return EAGAIN;
    }
    out = *pick;
    if (!peek) q.erase(pick);
    return 0;
  }

  std::vector<std::string> listing() const {
    std::vector<std::string> v;
    for (auto& [id, c] : conns) {
      if (!c.monitor && !c.activator) v.push_back(unique_name(id) + " " + unique_name(id) + " 0");
    }
    std::set<std::string> all;
    for (auto& [n, q] : names) all.insert(n);
    for (auto& [n, a] : activators) all.insert(n);
    for (const std::string& n : all) {
      auto it = names.find(n);
      if (it != names.end()) {
        const auto& q = it->second;
        for (size_t i = 0; i < q.size(); ++i)
          v.push_back(n + " " + unique_name(q[i].id) + " " + std::to_string(q[i].flags | (i == 0 ? kNamePrimary : kNameInQueue)));
      }
      auto a = activators.find(n);
      if (a != activators.end()) v.push_back(n + " " + unique_name(a->second) + " " + std::to_string(kNameActivator));
    }
    return v;
  }
};

// ---- the driver ----------------------------------------------------------

struct Null : QueueListener {
  void queue_ready(ConnId, void*) override {}
  void queue_overflow(ConnId, void*) override {}
};

std::string errname(int e) {
  if (e == 0) return "0";
  const char* n = strerrorname_np(e);
  return n ? n : std::to_string(e);
}

class Run {
 public:
  Run(uint64_t seed, bool verbose) : rng_(seed), seed_(seed), verbose_(verbose), bus_(std::make_unique<Bus>(&null_)) {
    BusLimits l;
    l.max_pending_replies = kMaxWaits;
    l.max_queued_messages = kMaxQueue;
    bus_->set_limits(l);
  }

  // False at the first disagreement.
  bool step(uint64_t n) {
    step_ = n;
    const unsigned op = rng_() % 100;
    if (model_.conns.size() < 3 || (op < 6 && model_.conns.size() < 10)) return op_hello();
    if (op < 9) return op_disconnect();
    if (op < 11) return op_byebye();
    if (op < 22) return op_acquire();
    if (op < 27) return op_release();
    if (op < 34) return op_match_add();
    if (op < 37) return op_match_remove();
    if (op < 50) return op_call();
    if (op < 58) return op_reply();
    if (op < 68) return op_signal();
    if (op < 71) return op_expire();
    if (op < 95) return op_recv();
    if (op < 96) return op_become_monitor();
    if (op < 97) return op_show_unobserved();
    if (op < 98) return op_snapshot();
    return op_list();
  }

  bool finish() {
    for (auto& [id, c] : model_.conns) {
      Entry e;
      Delivery d;
      while (true) {
        int me = model_.recv(id, false, false, 0, e), be = bus_->recv(id, 0, 0, d);
        if (!agree("final recv " + unique_name(id), me, be)) return false;
        if (me != 0) break;
        if (!same_entry(e, d)) return false;
      }
    }
    return true;
  }

 private:
  template <typename T>
  T pick(const std::vector<T>& v) {
    return v[rng_() % v.size()];
  }
  // Mostly a live connection, sometimes one that is gone or never was.
  ConnId any_id() {
    if (model_.conns.empty() || rng_() % 12 == 0) return 1 + rng_() % (model_.next_id + 1);
    auto it = model_.conns.begin();
    std::advance(it, static_cast<long>(rng_() % model_.conns.size()));
    return it->first;
  }

  void say(const std::string& what) {
    if (verbose_) std::printf("  %llu: %s\n", static_cast<unsigned long long>(step_), what.c_str());
  }
  bool agree(const std::string& what, int model, int engine) {
    say(what + " -> " + errname(engine));
    if (model == engine) return true;
    std::printf("mismatch at seed %llu step %llu: %s: model %s, engine %s\n", static_cast<unsigned long long>(seed_),
                static_cast<unsigned long long>(step_), what.c_str(), errname(model).c_str(), errname(engine).c_str());
    return false;
  }
  bool agree_text(const std::string& what, const std::string& model, const std::string& engine) {
    if (model == engine) return true;
    std::printf("mismatch at seed %llu step %llu: %s:\n  model:  %s\n  engine: %s\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(step_), what.c_str(),
                model.c_str(), engine.c_str());
    return false;
  }
  bool same_entry(const Entry& e, const Delivery& d) {
    return agree_text("received", e.text + " #" + std::to_string(e.seq),
                      enginetest::describe(d) + " #" + std::to_string(d.msg->seqnum));
  }

  std::shared_ptr<Message> message(uint8_t type) {
    auto m = std::make_shared<Message>();
    m->view.type = type;
    return m;
  }
  std::string_view keep(std::string s) { return arena_.emplace_back(std::move(s)); }

  bool op_hello() {
    ConnId me = 0, be = 0;
    if (rng_() % 8 == 0) {
      const std::string name = kNames[rng_() % 3];
      HelloParams p;
      p.flags = kHelloActivator;
      p.activator_name = name;
      int m = model_.hello_activator(me, name);
      int b = bus_->hello(std::move(p), be);
      return agree("hello activator " + name, m, b) && (m != 0 || agree_text("hello id", unique_name(me), unique_name(be)));
    }
    const bool monitor = rng_() % 8 == 0;
    HelloParams p;
    if (monitor) p.flags = kHelloMonitor;
    int m = model_.hello(me, monitor);
    int b = bus_->hello(std::move(p), be);
    return agree(monitor ? "hello monitor" : "hello", m, b) && agree_text("hello id", unique_name(me), unique_name(be));
  }
  bool op_disconnect() {
    ConnId id = any_id();
    return agree("disconnect " + unique_name(id), model_.disconnect(id), bus_->disconnect(id));
  }
  bool op_byebye() {
    ConnId id = any_id();
    return agree("byebye " + unique_name(id), model_.byebye(id), bus_->byebye(id));
  }
  bool op_acquire() {
    ConnId id = any_id();
    std::string name = kNames[rng_() % 3];
    uint64_t flags = rng_() % 8;  // replace, allow replacement, queue
    uint64_t mf = 0, bf = 0;
    const std::string what = "acquire " + unique_name(id) + " " + name + " flags " + std::to_string(flags);
    int m = model_.acquire(id, name, flags, mf);
    int b = bus_->name_acquire(id, name, flags, bf);
    return agree(what, m, b) && agree_text(what + " return flags", std::to_string(mf), std::to_string(bf));
  }
  bool op_release() {
    ConnId id = any_id();
    std::string name = kNames[rng_() % 3];
    return agree("release " + unique_name(id) + " " + name, model_.release(id, name), bus_->name_release(id, name));
  }
  bool op_match_add() {
    ConnId id = any_id();
    if (model_.is_monitor(id)) return true;  // a monitor's rules are its filter: not modelled
    Rule r;
    if (rng_() % 3 == 0) r.type = rng_() % 4 ? 4 : 1;
    if (rng_() % 2) r.member = rng_() % 4 ? kMembers[rng_() % 2] : "NameOwnerChanged";
    if (rng_() % 3 == 0) {
      switch (rng_() % 3) {
        case 0: r.sender = "org.freedesktop.DBus"; break;
        case 1: r.sender = kNames[rng_() % 3]; break;
        default: r.sender = unique_name(1 + rng_() % model_.next_id); break;
      }
    }
    if (rng_() % 3 == 0) r.path = kPaths[rng_() % 2];
    if (rng_() % 3 == 0) r.arg0 = rng_() % 3 ? kArgs[rng_() % 3] : unique_name(1 + rng_() % model_.next_id);
    const uint64_t cookie = 1 + rng_() % 3;
    MatchRule mr;
    std::string err;
    if (!MatchRule::parse(r.text(), mr, err)) {
      std::printf("generated rule does not parse: %s: %s\n", r.text().c_str(), err.c_str());
      return false;
    }
    const std::string what = "match_add " + unique_name(id) + " " + std::to_string(cookie) + " " + r.text();
    return agree(what, model_.match_add(id, cookie, r), bus_->match_add(id, cookie, std::move(mr)));
  }
  bool op_match_remove() {
    ConnId id = any_id();
    if (model_.is_monitor(id)) return true;
    const uint64_t cookie = 1 + rng_() % 3;
    return agree("match_remove " + unique_name(id) + " " + std::to_string(cookie), model_.match_remove(id, cookie),
                 bus_->match_remove(id, cookie));
  }
  bool op_call() {
    ConnId from = any_id();
    const bool expect = rng_() % 3 != 0;
    const bool no_auto_start = rng_() % 6 == 0;
    const int64_t prio = static_cast<int64_t>(rng_() % 5) - 2;
    const uint64_t deadline = expect && rng_() % 2 ? now_ + 1 + rng_() % 200 : 0;
    ConnId dst_id = 0;
    std::string by_name;
    switch (rng_() % 3) {
      case 0: dst_id = any_id(); break;
      case 1: by_name = kNames[rng_() % 3]; break;
      default: by_name = unique_name(any_id()); break;
    }
    auto m = message(1);
    m->flags = (expect ? uint64_t{kMsgExpectReply} : 0) | (no_auto_start ? uint64_t{kMsgNoAutoStart} : 0);
    m->priority = prio;
    m->timeout_ns = deadline;
    m->view.member = "Ma";
    m->view.path = "/a";
    if (by_name.empty()) {
      m->dst_id = dst_id;
    } else {
      m->dst_id = kDstName;
      m->dst_name = by_name;
      m->view.destination = keep(by_name);
    }
    uint64_t cookie = 0;
    const std::string what = "call " + unique_name(from) + " -> " + (by_name.empty() ? unique_name(dst_id) : by_name) +
                             (expect ? " expecting a reply" : "") + (no_auto_start ? " no auto-start" : "") + " p=" + std::to_string(prio) +
                             " deadline " + std::to_string(deadline);
    // The engine learns the cookie the model hands out: ask the model first.
    const uint64_t next_cookie = model_.conns.count(from) ? model_.conns[from].next_cookie : 1;
    m->cookie = next_cookie;
    int mr = model_.call(from, dst_id, by_name, expect, no_auto_start, prio, deadline, cookie);
    int br = bus_->send(from, m);
    return agree(what, mr, br);
  }
  bool op_reply() {
    ConnId from = any_id(), to = any_id();
    uint64_t rc = 1 + rng_() % 6;
    if (!model_.waits.empty() && rng_() % 4) {
      // Mostly an answer someone waits for.
      auto it = model_.waits.begin();
      std::advance(it, static_cast<long>(rng_() % model_.waits.size()));
      std::tie(to, from, rc) = it->first;
    } else if (model_.conns.count(to) && !model_.conns[to].sent_calls.empty() && rng_() % 2) {
      rc = pick(model_.conns[to].sent_calls);
    }
    auto m = message(2);
    m->dst_id = to;
    m->cookie_reply = rc;
    m->cookie = model_.conns.count(from) ? model_.conns[from].next_cookie : 1;
    uint64_t cookie = 0;
    const std::string what = "reply " + unique_name(from) + " -> " + unique_name(to) + " r=" + std::to_string(rc);
    int mr = model_.reply(from, to, rc, cookie);
    int br = bus_->send(from, m);
    return agree(what, mr, br);
  }
  bool op_signal() {
    ConnId from = any_id();
    Sig s;
    s.sender = unique_name(from);
    s.sender_id = from;
    s.member = kMembers[rng_() % 2];
    s.path = kPaths[rng_() % 2];
    if (rng_() % 2) s.arg0 = kArgs[rng_() % 3];
    auto m = message(4);
    m->flags = kMsgSignal;
    m->dst_id = kDstBroadcast;
    m->view.member = keep(s.member);
    m->view.path = keep(s.path);
    m->view.interface = "org.m.I";
    if (s.arg0) m->view.args.push_back({0, 's', keep(*s.arg0)});
    m->cookie = model_.conns.count(from) ? model_.conns[from].next_cookie : 1;
    uint64_t cookie = 0;
    const std::string what = "signal " + unique_name(from) + " " + s.member + " " + s.path + " arg0=" + s.arg0.value_or("-");
    return agree(what, model_.signal(from, s, cookie), bus_->send(from, m));
  }
  bool op_expire() {
    now_ += rng_() % 120;
    const int m = model_.expire(now_), b = bus_->expire_replies(now_);
    say("expire at " + std::to_string(now_) + " -> " + std::to_string(b));
    return agree_text("expire at " + std::to_string(now_), std::to_string(m), std::to_string(b));
  }
  bool op_recv() {
    ConnId id = any_id();
    const bool peek = rng_() % 5 == 0, prio = rng_() % 3 == 0;
    const int64_t bound = static_cast<int64_t>(rng_() % 5) - 2;
    uint64_t flags = (peek ? uint64_t{kRecvPeek} : 0) | (prio ? uint64_t{kRecvUsePriority} : 0);
    Entry e;
    Delivery d;
    const std::string what = "recv " + unique_name(id) + (peek ? " peek" : "") + (prio ? " prio<=" + std::to_string(bound) : "");
    int m = model_.recv(id, peek, prio, bound, e);
    int b = bus_->recv(id, flags, bound, d);
    if (!agree(what, m, b)) return false;
    return m != 0 || same_entry(e, d);
  }
  bool op_become_monitor() {
    ConnId id = any_id();
    return agree("become_monitor " + unique_name(id), model_.become_monitor(id), bus_->become_monitor(id, {}));
  }
  bool op_show_unobserved() {
    ConnId id = any_id();
    int m = model_.conns.count(id) ? 0 : ENXIO;
    if (m == 0) model_.show_unobserved(id);
    return agree("show_unobserved " + unique_name(id), m, bus_->show_unobserved(id));
  }
  // A handover: the engine is saved and loaded into a fresh bus, which
  // must go on exactly as the model does.
  bool op_snapshot() {
    say("snapshot");
    snap::Writer w;
    const size_t at = snap::begin_envelope(w, "model");
    bus_->save(w, nullptr);
    snap::seal(w, at);
    auto fresh = std::make_unique<Bus>(&null_);
    try {
      std::string writer;
      snap::FdTable fds(enginetest::handed_over(w.fds()));
      snap::Reader r = snap::open_envelope(w.buffer().data(), w.buffer().size(), &fds, writer);
      uint32_t tag = 0;
      snap::Reader body(nullptr, 0);
      if (!r.next_section(tag, body) || tag != snap::tag("ENGN")) return agree_text("snapshot", "ENGN", "no engine section");
      fresh->load(body, nullptr);
    } catch (const snap::FormatError& e) {
      return agree_text("snapshot", "loaded", e.what());
    }
    bus_ = std::move(fresh);
    return true;
  }

  bool op_list() {
    std::vector<NameOwnerInfo> v;
    bus_->list(kListUnique | kListNames | kListQueued | kListActivators, v);
    std::string engine, model;
    for (const NameOwnerInfo& i : v) engine += i.name + " " + unique_name(i.id) + " " + std::to_string(i.flags) + "; ";
    for (const std::string& s : model_.listing()) model += s + "; ";
    if (!agree_text("list", model, engine)) return false;
    const BusStats st = bus_->stats();
    size_t rules = 0;
    for (auto& [id, c] : model_.conns) rules += c.rules.size();
    const std::string ms = std::to_string(model_.conns.size()) + " conns, " + std::to_string(model_.names.size()) +
                           " names, " + std::to_string(rules) + " rules, " + std::to_string(model_.messages_sent) + " sent";
    const std::string bs = std::to_string(st.connections) + " conns, " + std::to_string(st.names) + " names, " +
                           std::to_string(st.match_rules) + " rules, " + std::to_string(st.messages_sent) + " sent";
    return agree_text("stats", ms, bs);
  }

  std::mt19937_64 rng_;
  uint64_t seed_, step_ = 0, now_ = 0;
  bool verbose_;
  Model model_;
  std::deque<std::string> arena_;  // strings message views point at; outlives the bus
  Null null_;
  std::unique_ptr<Bus> bus_;
};

}  // namespace

int main(int argc, char** argv) {
  // A fixed default keeps CI's runs the same; long runs go on to further seeds.
  uint64_t seed = 1;
  uint64_t steps = 3000;
  double seconds = 0;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seed") seed = std::strtoull(value(), nullptr, 10);
    else if (a == "--steps") steps = std::strtoull(value(), nullptr, 10);
    else if (a == "--seconds") seconds = std::strtod(value(), nullptr);
    else if (a == "--verbose") verbose = true;
    else {
      std::fprintf(stderr, "usage: model [--seed N] [--steps M] [--seconds S] [--verbose]\n");
      return 2;
    }
  }
  std::printf("model: seed %llu, %llu steps a run%s\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(steps), seconds > 0 ? ", further seeds until the time is up" : "");
  const auto start = std::chrono::steady_clock::now();
  uint64_t runs = 0, total = 0;
  for (uint64_t s = seed;; ++s) {
    Run run(s, verbose);
    for (uint64_t n = 0; n < steps; ++n) {
      if (!run.step(n)) {
        std::printf("replay: model --seed %llu --steps %llu --verbose\n0 passed, 1 failed\n",
                    static_cast<unsigned long long>(s), static_cast<unsigned long long>(n + 1));
        return 1;
      }
    }
    if (!run.finish()) {
      std::printf("replay: model --seed %llu --steps %llu --verbose\n0 passed, 1 failed\n",
                  static_cast<unsigned long long>(s), static_cast<unsigned long long>(steps));
      return 1;
    }
    ++runs;
    total += steps;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= seconds) {
      std::printf("model: %llu runs, %llu steps, engine and model agreed (seeds %llu..%llu, %.1f s)\n1 passed, 0 failed\n",
                  static_cast<unsigned long long>(runs), static_cast<unsigned long long>(total),
                  static_cast<unsigned long long>(seed), static_cast<unsigned long long>(s), elapsed);
      return 0;
    }
  }
}
