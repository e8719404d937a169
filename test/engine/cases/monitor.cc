// Monitors and eavesdroppers: copies of what others exchange.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(monitor, "a monitor gets a copy of unicast and broadcast") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(b, "type='signal'"), 0);
  ConnId m = f.monitor();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  REQUIRE_ERR(f.send(a, f.signal().cookie(2)), 0);
  CHECK_EQ(f.drain(m), (V{"call :1.0 c=1 [E]", "signal :1.0 c=2 Sig [E]"}));
  CHECK_EQ(f.drain(b), (V{"call :1.0 c=1 [A]", "signal :1.0 c=2 Sig [M]"}));
}

TEST(monitor, "has_monitors follows monitors coming and going") {
  Fixture f;
  CHECK(!f.bus.has_monitors());
  ConnId m = f.monitor();
  CHECK(f.bus.has_monitors());
  f.bus.disconnect(m);
  CHECK(!f.bus.has_monitors());
}

TEST(monitor, "a monitor with a filter sees only what it selects") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), m = f.hello();
  std::vector<MatchRule> filter{f.rule("member='Wanted'")};
  REQUIRE_ERR(f.bus.become_monitor(m, std::move(filter)), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1).member("Other")), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(2).member("Wanted")), 0);
  CHECK_EQ(f.drain(m), (V{"IdRemove :1.2 [O]", "call :1.0 c=2 Wanted [E]"}));
}

TEST(monitor, "become_monitor releases names, fails calls, and leaves the peer list") {
  Fixture f;
  ConnId a = f.hello(), m = f.hello(), w = f.hello();
  REQUIRE_ERR(f.acquire(m, "org.test.M"), 0);
  REQUIRE_ERR(f.send(a, f.call(m).cookie(3)), 0);
  REQUIRE_ERR(f.add_match(m, "type='signal'"), 0);
  REQUIRE_ERR(f.add_match(w, "type='signal'"), 0);
  f.drain(m);
  CHECK_ERR(f.bus.become_monitor(m, {}), 0);
  CHECK_EQ(f.drain(w), (V{"NameRemove org.test.M :1.1 [M]", "IdRemove :1.1 [M]"}));
  CHECK_EQ(f.drain(a), V{"ReplyDead r=3 :1.1 [A]"});
  CHECK_EQ(f.listing(kListUnique), (V{":1.0 :1.0 0", ":1.2 :1.2 0"}));
  CHECK_EQ(f.bus.stats().match_rules, 1u);
  CHECK_ERR(f.send(a, f.call(m).cookie(4)), ENXIO);
  CHECK_ERR(f.send(m, f.call(a).cookie(1)), EPERM);
}

TEST(monitor, "become_monitor errors") {
  Fixture f;
  ConnId m = f.monitor();
  CHECK_ERR(f.bus.become_monitor(m, {}), EPERM);
  CHECK_ERR(f.bus.become_monitor(99, {}), ENXIO);
  CHECK_ERR(f.bus.become_monitor(f.activator("org.test.S"), {}), EPERM);
}

TEST(monitor, "a monitor's waits as a caller are dropped") {
  Fixture f;
  ConnId a = f.hello(), m = f.hello();
  REQUIRE_ERR(f.send(m, f.call(a).cookie(1)), 0);
  REQUIRE_ERR(f.bus.become_monitor(m, {}), 0);
  CHECK_ERR(f.send(a, f.reply(m, 1).cookie(1)), ENXIO);
}

TEST(monitor, "observe shows monitors a message nobody else gets") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(b, "type='method_call',eavesdrop=true"), 0);
  ConnId m = f.monitor();
  CHECK_ERR(f.bus.observe(a, Msg(f, 1).to("org.freedesktop.DBus").cookie(1).member("Hello")), 0);
  CHECK_EQ(f.drain(m), V{"call :1.0 c=1 Hello [E]"});
  CHECK_EQ(f.drain(b), V{});
}

TEST(monitor, "observe_denied shows the message, then the refusal") {
  Fixture f;
  ConnId a = f.hello();
  ConnId m = f.monitor();
  CHECK_ERR(f.bus.observe_denied(a, f.call(a).cookie(6)), 0);
  CHECK_EQ(f.drain(m), (V{"call :1.0 c=6 [E]", "Denied r=6 :1.0 [E]"}));
  CHECK_EQ(f.drain(a), V{});
}

TEST(monitor, "reply failures reach monitors") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  ConnId m = f.monitor();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1).timeout(10)), 0);
  CHECK_EQ(f.bus.expire_replies(10), 1);
  CHECK_EQ(f.drain(m), (V{"call :1.0 c=1 [E]", "ReplyTimeout r=1 :1.1 [E]"}));
}

TEST(monitor, "an eavesdrop rule gets copies of unicast it matches") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), e = f.hello();
  REQUIRE_ERR(f.add_match(e, "type='method_call',member='Get',eavesdrop=true"), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1).member("Get")), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(2).member("Set")), 0);
  CHECK_EQ(f.drain(e), V{"call :1.0 c=1 Get [E]"});
}

TEST(monitor, "an eavesdropper is not sent a second copy of what it is addressed") {
  Fixture f;
  ConnId a = f.hello(), e = f.hello();
  REQUIRE_ERR(f.add_match(e, "eavesdrop=true"), 0);
  REQUIRE_ERR(f.send(a, f.call(e).cookie(1)), 0);
  CHECK_EQ(f.drain(e), V{"call :1.0 c=1 [A]"});
}

TEST(monitor, "removing the eavesdrop rule stops the copies") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), e = f.hello();
  REQUIRE_ERR(f.add_match(e, "eavesdrop=true", 9), 0);
  REQUIRE_ERR(f.bus.match_remove(e, 9), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_EQ(f.drain(e), V{});
}

TEST(monitor, "a destination rule needs eavesdrop to see anything") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), e = f.hello();
  REQUIRE_ERR(f.acquire(b, "org.test.B"), 0);
  REQUIRE_ERR(f.add_match(e, "destination='org.test.B'"), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_EQ(f.drain(e), V{});
  REQUIRE_ERR(f.add_match(e, "destination='org.test.B',eavesdrop=true", 2), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(2)), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.B").cookie(3)), 0);
  CHECK_EQ(f.drain(e), (V{"call :1.0 c=2 [E]", "call :1.0 c=3 [E]"}));
}

// GetStats reports this count: it once wrapped below zero when a monitor
// with a filter left.
TEST(monitor, "a monitor's filter counts as its rules until it leaves") {
  Fixture f;
  ConnId a = f.hello(), m = f.hello();
  REQUIRE_ERR(f.add_match(a, "member='X'"), 0);
  REQUIRE_ERR(f.add_match(m, "member='Y'"), 0);
  CHECK_EQ(f.bus.stats().match_rules, 2u);
  std::vector<MatchRule> filter{f.rule("member='A'"), f.rule("member='B'")};
  REQUIRE_ERR(f.bus.become_monitor(m, std::move(filter)), 0);
  CHECK_EQ(f.bus.stats().match_rules, 3u);
  REQUIRE_ERR(f.bus.disconnect(m), 0);
  CHECK_EQ(f.bus.stats().match_rules, 1u);
}
