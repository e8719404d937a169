// MATCH_ADD / MATCH_REMOVE: dbus-daemon's rule syntax, every key's
// semantics as seen through delivery, and the index against exact
// evaluation.
#include <random>

#include "../../../kdbus-native/engine/atom.h"
#include "../../../kdbus-native/engine/match_eval.h"
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

namespace {

// Rules that parse, and how they are written back (GetAllMatchRules).
struct Canonical {
  const char* text;
  const char* canonical;
};
const Canonical kValid[] = {
    {"", ""},
    {"type='signal'", "type='signal'"},
    {"type='method_call'", "type='method_call'"},
    {"type='method_return'", "type='method_return'"},
    {"type='error'", "type='error'"},
    {" member='Foo',  interface ='a.b'", "interface='a.b',member='Foo'"},
    {"sender='org.test.A',path='/a/b'", "path='/a/b',sender='org.test.A'"},
    {"path_namespace='/a'", "path_namespace='/a'"},
    {"destination=':1.7'", "destination=':1.7'"},
    {"eavesdrop=true", "eavesdrop='true'"},
    {"eavesdrop='true',eavesdrop='false'", ""},
    {"arg3='x',arg1path='/p/'", "arg1path='/p/',arg3='x'"},
    {"arg0namespace='org.test',arg2='z'", "arg0namespace='org.test',arg2='z'"},
    {"arg1='a',arg0namespace='org'", "arg0namespace='org',arg1='a'"},
    {"arg0namespace='org'", "arg0namespace='org'"},
    {"arg63='last'", "arg63='last'"},
    {"arg0='it'\\''s'", "arg0='it'\\''s'"},
    {"arg0=it\\'s", "arg0='it'\\''s'"},
    {"arg0='a,b'", "arg0='a,b'"},
    {"arg0=a\\b", "arg0='a\\b'"},
    {"arg0=trail\\", "arg0='trail\\'"},
    {"member='M',  ", "member='M'"},
};

// Rules dbus-daemon refuses as MatchRuleInvalid.
const char* const kInvalid[] = {
    "type='bogus'",
    "type='signal',type='signal'",
    "member='M',member='N'",
    "member='1bad'",
    "interface='nodot'",
    "sender='bad..name'",
    "destination='bad..'",
    "path='no/slash'",
    "path='/a',path_namespace='/a'",
    "path_namespace='/a',path_namespace='/b'",
    "eavesdrop='maybe'",
    "arg='x'",
    "argx='x'",
    "arg64='x'",
    "arg9999999='x'",
    "arg0junk='x'",
    "arg0='a',arg0='b'",
    "arg0namespace='org',arg0='x'",
    "arg0namespace='bad..ns'",
    "unknown='x'",
    "member",
    "member 'x'",
    "='x'",
    "member='unterminated",
};

}  // namespace

TEST(match, "valid rules parse and write back canonically") {
  for (const Canonical& c : kValid) {
    MatchRule r;
    std::string err;
    if (!CHECK(MatchRule::parse(c.text, r, err))) {
      fail(__FILE__, __LINE__, std::string("  rule: ") + c.text + ": " + err);
      continue;
    }
    CHECK_EQ(r.to_string(), std::string(c.canonical));
    // The canonical text reads back as the same rule.
    MatchRule again;
    CHECK(MatchRule::parse(r.to_string(), again, err));
    CHECK(again == r);
  }
}

TEST(match, "invalid rules are refused with a reason") {
  for (const char* text : kInvalid) {
    MatchRule r;
    std::string err;
    if (MatchRule::parse(text, r, err)) fail(__FILE__, __LINE__, std::string("parsed: ") + text);
    else CHECK(!err.empty());
  }
}

TEST(match, "rules differing in any key are unequal") {
  Fixture f;
  const char* texts[] = {"type='signal'", "member='M'", "interface='a.b'", "path='/a'", "path_namespace='/a'",
                         "sender='a.b'", "destination='a.b'", "arg0namespace='a'", "arg0='a'", "arg0path='a'",
                         "arg1='a'", "eavesdrop=true"};
  for (const char* x : texts) {
    for (const char* y : texts) {
      CHECK_EQ(f.rule(x) == f.rule(y), x == y);
    }
  }
}

TEST(match, "MATCH_REMOVE by cookie removes every entry with it") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(b, "member='X'", 5), 0);
  REQUIRE_ERR(f.add_match(b, "member='Y'", 5), 0);
  REQUIRE_ERR(f.add_match(b, "member='Z'", 6), 0);
  CHECK_EQ(f.bus.stats().match_rules, 3u);
  CHECK_ERR(f.bus.match_remove(b, 5), 0);
  CHECK_EQ(f.bus.stats().match_rules, 1u);
  CHECK_ERR(f.bus.match_remove(b, 5), EBADSLT);
  f.send(a, f.signal("X").cookie(1));
  f.send(a, f.signal("Z").cookie(2));
  CHECK_EQ(f.drain(b), V{"signal :1.0 c=2 Z [M]"});
  CHECK_ERR(f.bus.match_remove(99, 5), ENXIO);
  CHECK_ERR(f.add_match(99, "member='X'"), ENXIO);
}

TEST(match, "match_find gives the most recently added equal rule") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.add_match(a, "member='X'", 1), 0);
  REQUIRE_ERR(f.add_match(a, "member='Y'", 2), 0);
  REQUIRE_ERR(f.add_match(a, "member='X'", 3), 0);
  uint64_t cookie = 0;
  CHECK_ERR(f.bus.match_find(a, f.rule("member='X'"), cookie), 0);
  CHECK_EQ(cookie, 3u);
  CHECK_ERR(f.bus.match_find(a, f.rule("member='W'"), cookie), EBADSLT);
  CHECK_ERR(f.bus.match_find(42, f.rule("member='X'"), cookie), ENXIO);
}

TEST(match, "match_rules lists the rules in the order added") {
  Fixture f;
  ConnId a = f.hello();
  f.add_match(a, "member='B'", 1);
  f.add_match(a, "member='A'", 2);
  std::vector<const MatchRule*> rules;
  REQUIRE_ERR(f.bus.match_rules(a, rules), 0);
  V texts;
  for (const MatchRule* r : rules) texts.push_back(r->to_string());
  CHECK_EQ(texts, (V{"member='B'", "member='A'"}));
  CHECK_ERR(f.bus.match_rules(42, rules), ENXIO);
}

TEST(match, "equal strings of rules are held once, until the last rule naming them goes") {
  const size_t before = Atom::table_size();
  {
    Fixture f;
    ConnId a = f.hello(), b = f.hello();
    REQUIRE_ERR(f.add_match(a, "interface='org.atomtest.Shared',member='AtomA'", 1), 0);
    REQUIRE_ERR(f.add_match(b, "interface='org.atomtest.Shared',member='AtomA'", 2), 0);
    REQUIRE_ERR(f.add_match(b, "interface='org.atomtest.Shared',member='AtomB'", 3), 0);
    CHECK_EQ(Atom::table_size(), before + 3);
    REQUIRE_ERR(f.bus.match_remove(b, 3), 0);
    CHECK_EQ(Atom::table_size(), before + 2);
    REQUIRE_ERR(f.bus.disconnect(a), 0);
    CHECK_EQ(Atom::table_size(), before + 2);
  }
  CHECK_EQ(Atom::table_size(), before);
}

// The bus keeps one index over every peer's rules: a broadcast must reach
// exactly the peers with an accepting rule, once each, and never a peer
// that went, whatever rules the others hold.
TEST(match, "a broadcast reaches once each the peers whose rules accept it, beside many peers with other rules") {
  Fixture f;
  ConnId sender = f.hello();
  std::vector<ConnId> peers;
  for (int i = 0; i < 50; ++i) peers.push_back(f.hello());
  auto wants = [](size_t i) { return i % 7 == 3; };
  for (size_t i = 0; i < peers.size(); ++i) {
    REQUIRE_ERR(f.add_match(peers[i], "member='Other" + std::to_string(i) + "'", 1), 0);
    if (wants(i)) {
      REQUIRE_ERR(f.add_match(peers[i], "member='Sig'", 2), 0);
      REQUIRE_ERR(f.add_match(peers[i], "type='signal',interface='org.test.I'", 3), 0);
    }
  }
  REQUIRE_ERR(f.send(sender, f.signal("Sig").cookie(1)), 0);
  for (size_t i = 0; i < peers.size(); ++i) CHECK_EQ(f.drain(peers[i]).size(), wants(i) ? 1u : 0u);
  REQUIRE_ERR(f.bus.disconnect(peers[3]), 0);
  REQUIRE_ERR(f.bus.match_remove(peers[10], 2), 0);
  REQUIRE_ERR(f.bus.match_remove(peers[10], 3), 0);
  REQUIRE_ERR(f.send(sender, f.signal("Sig").cookie(2)), 0);
  for (size_t i = 0; i < peers.size(); ++i) {
    if (i == 3) continue;
    CHECK_EQ(f.drain(peers[i]).size(), wants(i) && i != 10 ? 1u : 0u);
  }
}

TEST(match, "the per-connection rule limit is EMFILE") {
  Fixture f;
  BusLimits l;
  l.max_match_rules = 2;
  f.bus.set_limits(l);
  ConnId a = f.hello();
  CHECK_ERR(f.add_match(a, "member='A'", 1), 0);
  CHECK_ERR(f.add_match(a, "member='B'", 2), 0);
  CHECK_ERR(f.add_match(a, "member='C'", 3), EMFILE);
  CHECK_ERR(f.bus.match_remove(a, 1), 0);
  CHECK_ERR(f.add_match(a, "member='C'", 3), 0);
}

// Every key, accepting and refusing, observed as delivery of a broadcast
// from :1.0 (which owns org.test.A) to :1.1 (the rule's holder).
namespace {

struct Eval {
  const char* rule;
  const char* what;  // the message, in words
  Msg (*build)(Fixture&);
  bool delivered;
};

Msg sig(Fixture& f) { return f.signal("Sig").cookie(1); }

const Eval kEval[] = {
    {"type='signal'", "a signal", sig, true},
    {"type='method_call'", "a signal", sig, false},
    {"member='Sig'", "member Sig", sig, true},
    {"member='Other'", "member Sig", sig, false},
    {"interface='org.test.I'", "interface org.test.I", sig, true},
    {"interface='org.test.J'", "interface org.test.I", sig, false},
    {"interface='org.test.I'", "no interface", [](Fixture& f) { return std::move(Msg(f, 4).broadcast().path("/t").member("S")); }, false},
    {"path='/t'", "path /t", sig, true},
    {"path='/t/u'", "path /t", sig, false},
    {"path_namespace='/t'", "path /t", sig, true},
    {"path_namespace='/t'", "path /t/u", [](Fixture& f) { return std::move(f.signal().path("/t/u")); }, true},
    {"path_namespace='/t'", "path /tu", [](Fixture& f) { return std::move(f.signal().path("/tu")); }, false},
    {"path_namespace='/'", "path /x", [](Fixture& f) { return std::move(f.signal().path("/x")); }, true},
    {"sender=':1.0'", "from :1.0", sig, true},
    {"sender=':1.2'", "from :1.0", sig, false},
    {"sender='org.test.A'", "from the owner of org.test.A", sig, true},
    {"sender='org.test.Nobody'", "from :1.0", sig, false},
    {"sender='org.freedesktop.DBus'", "from :1.0", sig, false},
    {"destination=':1.1'", "a broadcast", sig, false},
    {"arg0='x'", "arg0 x", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "x")); }, true},
    {"arg0='x'", "arg0 y", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "y")); }, false},
    {"arg0='x'", "no args", sig, false},
    {"arg0='/x'", "arg0 object path /x", [](Fixture& f) { return std::move(f.signal().arg(0, 'o', "/x")); }, false},
    {"arg2='z'", "arg1 a, arg2 z", [](Fixture& f) { return std::move(f.signal().arg(1, 's', "a").arg(2, 's', "z")); }, true},
    {"arg1='a',arg2='z'", "arg1 a, arg2 y", [](Fixture& f) { return std::move(f.signal().arg(1, 's', "a").arg(2, 's', "y")); }, false},
    {"arg0path='/a/'", "arg0 /a/b", [](Fixture& f) { return std::move(f.signal().arg(0, 'o', "/a/b")); }, true},
    {"arg0path='/a/b'", "arg0 /a/", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "/a/")); }, true},
    {"arg0path='/a/b'", "arg0 /a/bc", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "/a/bc")); }, false},
    {"arg0path='/a'", "arg0 /a/b", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "/a/b")); }, false},
    {"arg0path='/a/'", "no arg0", sig, false},
    {"arg0namespace='org.test'", "arg0 org.test", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "org.test")); }, true},
    {"arg0namespace='org.test'", "arg0 org.test.X", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "org.test.X")); }, true},
    {"arg0namespace='org.test'", "arg0 org.testX", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "org.testX")); }, false},
    {"arg0namespace='org.test'", "arg0 org", [](Fixture& f) { return std::move(f.signal().arg(0, 's', "org")); }, false},
    {"arg0namespace='org'", "no arg0", sig, false},
    {"type='signal',member='Sig',interface='org.test.I',path='/t',sender=':1.0'", "all of them", sig, true},
    {"type='signal',member='Sig',interface='org.test.I',path='/t',sender=':1.1'", "all but the sender", sig, false},
};

// One case per row.
const bool kEvalRegistered = [] {
  for (const Eval& e : kEval) {
    std::string name = std::string(e.rule) + " against " + e.what + (e.delivered ? ": delivered" : ": not delivered");
    Register("match-key", std::move(name), [&e] {
      Fixture f;
      ConnId a = f.hello(), b = f.hello();
      REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
      REQUIRE_ERR(f.add_match(b, e.rule), 0);
      REQUIRE_ERR(f.send(a, e.build(f)), 0);
      CHECK_EQ(f.drain(b).size(), e.delivered ? 1u : 0u);
    });
  }
  return true;
}();

}  // namespace

namespace {

// "Does `id` own `name`" as the command set answers it, for exact evaluation.
struct BusNames : OwnershipOracle {
  explicit BusNames(Bus& b) : bus(b) {}
  bool is_primary_owner(ConnId id, std::string_view name) const override {
    ConnId owner = 0;
    return bus.name_owner(name, owner) == 0 && owner == id;
  }
  Bus& bus;
};

const char* const kPick[] = {"a", "b", "c"};

std::string random_rule(std::mt19937_64& rng) {
  std::string r;
  auto maybe = [&](const std::string& kv) {
    if (rng() % 3 == 0) r += (r.empty() ? "" : ",") + kv;
  };
  maybe(rng() % 2 ? "type='signal'" : "type='method_call'");
  maybe(std::string("member='M") + kPick[rng() % 3] + "'");
  maybe(std::string("interface='org.") + kPick[rng() % 3] + ".I'");
  switch (rng() % 4) {
    case 0: maybe(std::string("path='/") + kPick[rng() % 3] + "'"); break;
    case 1: maybe(std::string("path_namespace='/") + kPick[rng() % 3] + "'"); break;
    default: break;
  }
  maybe(rng() % 2 ? std::string("sender=':1.") + std::to_string(rng() % 3) + "'"
                  : std::string("sender='org.") + kPick[rng() % 3] + ".N'");
  if (rng() % 2) maybe(std::string("arg0='") + kPick[rng() % 3] + "'");
  else maybe(std::string("arg0namespace='") + kPick[rng() % 3] + "'");
  maybe(std::string("arg1='") + kPick[rng() % 3] + "'");
  maybe(std::string("arg2path='/") + kPick[rng() % 3] + "/'");
  return r;
}

}  // namespace

// The index only narrows down which rules are evaluated: what a connection
// receives must be exactly what evaluating every one of its rules accepts.
TEST(match, "the index agrees with exact evaluation on random rules and signals") {
  std::mt19937_64 rng(20261204);
  for (int round = 0; round < 40; ++round) {
    Fixture f;
    ConnId s[3] = {f.hello(), f.hello(), f.hello()};
    for (int i = 0; i < 3; ++i) f.acquire(s[i], std::string("org.") + kPick[i] + ".N");
    ConnId holder = f.hello();
    std::vector<MatchRule> rules;
    for (int i = 0; i < 12; ++i) {
      std::string text = random_rule(rng);
      rules.push_back(f.rule(text));
      REQUIRE_ERR(f.add_match(holder, text, static_cast<uint64_t>(i + 1)), 0);
    }
    // Remove a few, so the index also has to forget.
    for (int i = 0; i < 3; ++i) {
      uint64_t c = rng() % 12 + 1;
      if (f.bus.match_remove(holder, c) == 0) rules[c - 1] = f.rule("member='RemovedNever'");
    }
    for (int i = 0; i < 3; ++i) f.drain(s[i]);
    f.drain(holder);
    BusNames oracle(f.bus);
    for (int m = 0; m < 60; ++m) {
      ConnId from = s[rng() % 3];
      Msg msg = f.signal(std::string("M") + kPick[rng() % 3]);
      msg.iface(std::string("org.") + kPick[rng() % 3] + ".I").cookie(static_cast<uint64_t>(m + 1));
      msg.path(rng() % 2 ? std::string("/") + kPick[rng() % 3] : std::string("/") + kPick[rng() % 3] + "/x");
      if (rng() % 4) {
        msg.arg(0, 's', rng() % 2 ? kPick[rng() % 3] : std::string(kPick[rng() % 3]) + ".x");
        msg.arg(1, 's', kPick[rng() % 3]);
        if (rng() % 2) msg.arg(2, 'o', std::string("/") + kPick[rng() % 3] + "/y");
      }
      std::shared_ptr<Message> built = msg.build();
      built->src_id = from;  // what SEND sets, so exact evaluation sees the same
      MatchContext ctx{&oracle, from, 0, false};
      bool want = false;
      for (const MatchRule& r : rules) want = want || rule_matches(r, *built, ctx);
      REQUIRE_ERR(f.bus.send(from, built), 0);
      const bool got = f.drain(holder).size() == 1;
      if (got != want) {
        std::string all;
        for (const MatchRule& r : rules) all += "\n      " + r.to_string();
        fail(__FILE__, __LINE__, "round " + std::to_string(round) + " message " + std::to_string(m) + ": delivered " +
                                     show(got) + ", exact evaluation " + show(want) + all);
        return;
      }
    }
  }
}
