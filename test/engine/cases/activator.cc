// Activators: standing in for a name, handing queued calls to the owner
// that takes it, and taking it back.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(activator, "a call to an activatable name queues at the activator") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  CHECK_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  CHECK_EQ(f.drain(act), V{"call :1.0 c=1 [A]"});
}

TEST(activator, "NO_AUTO_START is EADDRNOTAVAIL") {
  Fixture f;
  f.activator("org.test.S");
  ConnId a = f.hello();
  CHECK_ERR(f.send(a, f.call("org.test.S").cookie(1).no_auto_start()), EADDRNOTAVAIL);
}

TEST(activator, "the new owner takes over what queued, and the reply waits") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(2)), 0);
  ConnId s = f.hello();
  REQUIRE_ERR(f.acquire(s, "org.test.S"), 0);
  CHECK_EQ(f.drain(act), V{});
  CHECK_EQ(f.drain(s), (V{"NameAdd org.test.S :1.1 [N]", "call :1.0 c=1 [A]", "call :1.0 c=2 [A]"}));
  CHECK_ERR(f.send(s, f.reply(a, 1).cookie(1)), 0);
  CHECK_ERR(f.bus.disconnect(s), 0);
  CHECK_EQ(f.drain(a), (V{"return :1.1 c=1 r=1 [A]", "ReplyDead r=2 :1.1 [A]"}));
}

TEST(activator, "only messages for that name move over") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(2).no_auto_start()), EADDRNOTAVAIL);
  ConnId s = f.hello();
  REQUIRE_ERR(f.acquire(s, "org.test.Other"), 0);
  CHECK_EQ(f.drain(act), V{"call :1.0 c=1 [A]"});
}

TEST(activator, "the name goes back to the activator when the owner leaves") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello(), s = f.hello();
  REQUIRE_ERR(f.acquire(s, "org.test.S"), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  CHECK_EQ(f.drain(s), (V{"NameAdd org.test.S :1.1 [N]", "call :1.0 c=1 [A]"}));
  REQUIRE_ERR(f.bus.disconnect(s), 0);
  CHECK_EQ(f.drain(a), V{"ReplyDead r=1 :1.1 [A]"});
  CHECK_ERR(f.send(a, f.call("org.test.S").cookie(2)), 0);
  CHECK_EQ(f.drain(act), V{"call :1.0 c=2 [A]"});
}

TEST(activator, "an activator may answer only what queued at it") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(4)), 0);
  CHECK_ERR(f.send(act, f.call(a).cookie(1)), EPERM);
  CHECK_ERR(f.send(act, f.signal().cookie(1)), EPERM);
  CHECK_ERR(f.send(act, f.reply(a, 5).cookie(1)), EPERM);
  CHECK_ERR(f.send(act, Msg(f, 3).to(a).reply_to(4).cookie(1).error_name("org.test.Failed")), 0);
  CHECK_EQ(f.drain(a).size(), 1u);
}

TEST(activator, "an activator's failure answer reaches the caller from the activator") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(4)), 0);
  REQUIRE_ERR(f.send(act, Msg(f, 3).to(a).reply_to(4).cookie(1)), 0);
  V got = f.drain(a);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0], "error " + unique_name(act) + " c=1 r=4 [A]");
}

TEST(activator, "the activator leaving takes the name with it") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  CHECK_ERR(f.bus.disconnect(act), 0);
  CHECK_ERR(f.send(a, f.call("org.test.S").cookie(1)), ESRCH);
  CHECK_EQ(f.listing(kListActivators), V{});
  ConnId again = f.activator("org.test.S");
  CHECK(again != act);
}

TEST(activator, "listed with kListActivators only") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  CHECK_EQ(f.listing(kListActivators), V{"org.test.S " + unique_name(act) + " " + std::to_string(kNameActivator)});
  CHECK_EQ(f.listing(kListUnique | kListNames), V{});
}

TEST(activator, "CONN_INFO by an activatable name with no owner is ESRCH") {
  Fixture f;
  f.activator("org.test.S");
  ConnInfo info;
  CHECK_ERR(f.bus.conn_info(0, "org.test.S", info), ESRCH);
}

TEST(activator, "monitors see what woke an activator only after show_unobserved") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  ConnId m = f.monitor();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(2)), 0);
  CHECK_EQ(f.drain(m), V{});
  CHECK_ERR(f.bus.show_unobserved(act), 0);
  CHECK_EQ(f.drain(m), (V{"call :1.0 c=1 [E]", "call :1.0 c=2 [E]"}));
  CHECK_ERR(f.bus.show_unobserved(act), 0);
  CHECK_EQ(f.drain(m), V{});
  CHECK_ERR(f.bus.show_unobserved(12345), ENXIO);
}

TEST(activator, "an owner arriving shows held messages to monitors first") {
  Fixture f;
  f.activator("org.test.S");
  ConnId a = f.hello();
  ConnId m = f.monitor();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  ConnId s = f.hello();
  REQUIRE_ERR(f.acquire(s, "org.test.S"), 0);
  // The monitor took an id too: s is :1.2.
  CHECK_EQ(f.drain(m), (V{"IdAdd :1.2 [E]", "NameAdd org.test.S :1.2 [E]", "call :1.0 c=1 [E]"}));
}

TEST(activator, "a moved wait keeps its deadline and names the new callee") {
  Fixture f;
  f.activator("org.test.S");
  ConnId a = f.hello();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1).timeout(50)), 0);
  ConnId s = f.hello();
  REQUIRE_ERR(f.acquire(s, "org.test.S"), 0);
  CHECK_EQ(f.bus.next_deadline(), 50u);
  CHECK_EQ(f.bus.expire_replies(60), 1);
  CHECK_EQ(f.drain(a), V{"ReplyTimeout r=1 :1.1 [A]"});
}
