// Expected replies: bookkeeping, refusals, ReplyDead, deadlines.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(reply, "a reply to a waiting caller is delivered once") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(5)), 0);
  CHECK_ERR(f.send(b, f.reply(a, 5).cookie(1)), 0);
  CHECK_EQ(f.drain(a), V{"return :1.1 c=1 r=5 [A]"});
  CHECK_ERR(f.send(b, f.reply(a, 5).cookie(2)), EPERM);
}

TEST(reply, "an error answers a call too") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(5)), 0);
  CHECK_ERR(f.send(b, Msg(f, 3).to(a).reply_to(5).cookie(1).error_name("org.test.Error")), 0);
  CHECK_EQ(f.drain(a), V{"error :1.1 c=1 r=5 [A]"});
}

TEST(reply, "an unrequested reply is EPERM without a policy") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(b, f.reply(a, 5).cookie(1)), EPERM);
  CHECK_EQ(f.drain(a), V{});
}

TEST(reply, "only the callee may answer") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(5)), 0);
  CHECK_ERR(f.send(c, f.reply(a, 5).cookie(1)), EPERM);
  CHECK_ERR(f.send(b, f.reply(a, 6).cookie(1)), EPERM);
  CHECK_ERR(f.send(b, f.reply(a, 5).cookie(1)), 0);
}

TEST(reply, "a call without EXPECT_REPLY registers no wait") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, Msg(f, 1).to(b).cookie(5)), 0);
  CHECK_ERR(f.send(b, f.reply(a, 5).cookie(1)), EPERM);
}

TEST(reply, "the bus's own replies need no wait") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.send(kIdBus, f.reply(a, 9).cookie(1)), 0);
  CHECK_EQ(f.drain(a), V{"return bus c=1 r=9 [A]"});
}

TEST(reply, "the callee going away sends ReplyDead, in call order") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.send(a, f.call(c).cookie(8)), 0);
  REQUIRE_ERR(f.send(b, f.call(c).cookie(3)), 0);
  REQUIRE_ERR(f.send(a, f.call(c).cookie(2)), 0);
  CHECK_ERR(f.bus.disconnect(c), 0);
  CHECK_EQ(f.drain(a), (V{"ReplyDead r=8 :1.2 [A]", "ReplyDead r=2 :1.2 [A]"}));
  CHECK_EQ(f.drain(b), V{"ReplyDead r=3 :1.2 [A]"});
}

TEST(reply, "a caller going away withdraws its waits") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(5).timeout(100)), 0);
  CHECK_ERR(f.bus.disconnect(a), 0);
  CHECK_EQ(f.bus.next_deadline(), 0u);
  CHECK_EQ(f.bus.expire_replies(1000), 0);
  CHECK_ERR(f.send(b, f.reply(a, 5).cookie(1)), ENXIO);
}

TEST(reply, "the pending-reply limit is EMLINK, and frees up") {
  Fixture f;
  BusLimits l;
  l.max_pending_replies = 2;
  f.bus.set_limits(l);
  CHECK_EQ(f.bus.limits().max_pending_replies, 2u);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(2)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(3)), EMLINK);
  // Not delivered either.
  CHECK_EQ(f.drain(b), (V{"call :1.0 c=1 [A]", "call :1.0 c=2 [A]"}));
  CHECK_ERR(f.send(a, Msg(f, 1).to(b).cookie(4)), 0);  // no reply wanted: not counted
  CHECK_ERR(f.send(b, f.reply(a, 1).cookie(9)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(3)), 0);
}

TEST(reply, "the same call again refreshes its wait instead of adding one") {
  Fixture f;
  BusLimits l;
  l.max_pending_replies = 1;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1).timeout(500)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1).timeout(900)), 0);
  CHECK_EQ(f.bus.next_deadline(), 900u);
  CHECK_EQ(f.bus.expire_replies(600), 0);
  CHECK_EQ(f.bus.expire_replies(900), 1);
}

TEST(reply, "deadlines expire in deadline order as ReplyTimeout") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  CHECK_EQ(f.bus.next_deadline(), 0u);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1).timeout(300)), 0);
  REQUIRE_ERR(f.send(a, f.call(c).cookie(2).timeout(100)), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(3)), 0);  // never expires
  REQUIRE_ERR(f.send(a, f.call(b).cookie(4).timeout(200)), 0);
  CHECK_EQ(f.bus.next_deadline(), 100u);
  CHECK_EQ(f.bus.expire_replies(99), 0);
  CHECK_EQ(f.bus.expire_replies(200), 2);
  CHECK_EQ(f.drain(a), (V{"ReplyTimeout r=2 :1.2 [A]", "ReplyTimeout r=4 :1.1 [A]"}));
  CHECK_EQ(f.bus.next_deadline(), 300u);
  CHECK_ERR(f.send(c, f.reply(a, 2).cookie(1)), EPERM);
  CHECK_ERR(f.send(b, f.reply(a, 1).cookie(1)), 0);
  CHECK_EQ(f.bus.next_deadline(), 0u);
  CHECK_ERR(f.send(b, f.reply(a, 3).cookie(2)), 0);
}

TEST(reply, "a reply that clears the wait clears its deadline") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1).timeout(300)), 0);
  REQUIRE_ERR(f.send(b, f.reply(a, 1).cookie(1)), 0);
  CHECK_EQ(f.bus.expire_replies(1000), 0);
  CHECK_EQ(f.drain(a), V{"return :1.1 c=1 r=1 [A]"});
}

TEST(reply, "a reply may itself expect a reply") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  // EXPECT_REPLY makes it a call: it neither needs nor clears the wait.
  CHECK_ERR(f.send(b, f.call(a).reply_to(1).cookie(2)), 0);
  CHECK_ERR(f.send(b, f.reply(a, 1).cookie(3)), 0);
  CHECK_ERR(f.send(a, f.reply(b, 2).cookie(4)), 0);
}
