// SEND and RECV: unicast, broadcast, addressing errors, peek, priorities.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(message, "unicast by id arrives addressed, with the sender set") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1).member("Ping")), 0);
  CHECK_EQ(f.drain(b), V{"call :1.0 c=1 Ping [A]"});
  CHECK_EQ(f.drain(a), V{});
}

TEST(message, "unicast by unique name") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(":1.1").cookie(2)), 0);
  CHECK_EQ(f.drain(b), V{"call :1.0 c=2 [A]"});
}

TEST(message, "unicast by well-known name goes to the primary owner") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(b, "org.test.B"), 0);
  REQUIRE_ERR(f.acquire(c, "org.test.B", kNameQueue), 0);
  f.drain(b);
  CHECK_ERR(f.send(a, f.call("org.test.B").cookie(3)), 0);
  CHECK_EQ(f.drain(b), V{"call :1.0 c=3 [A]"});
  CHECK_EQ(f.drain(c), V{});
}

TEST(message, "addressing errors") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.send(a, f.call(ConnId{50}).cookie(1)), ENXIO);
  CHECK_ERR(f.send(a, f.call(":1.49").cookie(1)), ESRCH);
  CHECK_ERR(f.send(a, f.call(":1.x").cookie(1)), ESRCH);
  CHECK_ERR(f.send(a, f.call("org.test.Nobody").cookie(1)), ESRCH);
  CHECK_ERR(f.send(a, f.call(std::string()).cookie(1)), EINVAL);
  CHECK_EQ(f.bus.stats().messages_sent, 0u);
}

TEST(message, "a sender that does not exist is ENXIO, a null message EINVAL") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.send(9, f.call(a).cookie(1)), ENXIO);
  CHECK_ERR(f.bus.send(a, nullptr), EINVAL);
  CHECK_ERR(f.bus.observe(a, nullptr), EINVAL);
  CHECK_ERR(f.bus.observe_denied(a, nullptr), EINVAL);
}

TEST(message, "broadcast needs a signal without EXPECT_REPLY") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.send(a, Msg(f, 1).broadcast().cookie(1)), ENOTUNIQ);
  CHECK_ERR(f.send(a, f.signal().expect_reply().cookie(1)), ENOTUNIQ);
}

TEST(message, "broadcast reaches matching rules only, the sender's included") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello(), d = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal',member='Sig'"), 0);
  REQUIRE_ERR(f.add_match(b, "type='signal',member='Sig'"), 0);
  REQUIRE_ERR(f.add_match(c, "type='signal',member='Other'"), 0);
  CHECK_ERR(f.send(a, f.signal("Sig").cookie(4)), 0);
  CHECK_EQ(f.drain(a), V{"signal :1.0 c=4 Sig [M]"});
  CHECK_EQ(f.drain(b), V{"signal :1.0 c=4 Sig [M]"});
  CHECK_EQ(f.drain(c), V{});
  CHECK_EQ(f.drain(d), V{});
}

TEST(message, "a matching rule does not see unicast to others") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.add_match(c, "type='method_call'"), 0);
  REQUIRE_ERR(f.add_match(c, "type='signal'", 2), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_ERR(f.send(a, f.unicast_signal(b).cookie(2)), 0);
  CHECK_EQ(f.drain(c), V{});
  CHECK_EQ(f.drain(b), (V{"call :1.0 c=1 [A]", "signal :1.0 c=2 Sig [A]"}));
}

TEST(message, "unicast to oneself") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.send(a, f.call(a).cookie(1)), 0);
  CHECK_EQ(f.drain(a), V{"call :1.0 c=1 [A]"});
}

TEST(message, "the bus itself may send to a connection") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.send(kIdBus, f.unicast_signal(a).cookie(1)), 0);
  CHECK_EQ(f.drain(a), V{"signal bus c=1 Sig [A]"});
}

TEST(message, "RECV of an empty queue is EAGAIN, of an unknown id ENXIO") {
  Fixture f;
  ConnId a = f.hello();
  Delivery d;
  CHECK_ERR(f.bus.recv(a, 0, 0, d), EAGAIN);
  CHECK_ERR(f.bus.recv(a, kRecvPeek, 0, d), EAGAIN);
  CHECK_ERR(f.bus.recv(a, kRecvUsePriority, 100, d), EAGAIN);
  CHECK_ERR(f.bus.recv(77, 0, 0, d), ENXIO);
}

TEST(message, "peek leaves the head queued") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.send(a, f.call(b).cookie(1));
  f.send(a, f.call(b).cookie(2));
  Delivery d;
  REQUIRE_ERR(f.bus.recv(b, kRecvPeek, 0, d), 0);
  CHECK_EQ(describe(d), std::string("call :1.0 c=1 [A]"));
  REQUIRE_ERR(f.bus.recv(b, kRecvPeek, 0, d), 0);
  CHECK_EQ(describe(d), std::string("call :1.0 c=1 [A]"));
  CHECK_EQ(f.drain(b), (V{"call :1.0 c=1 [A]", "call :1.0 c=2 [A]"}));
}

TEST(message, "drop takes the head away") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.send(a, f.call(b).cookie(1));
  f.send(a, f.call(b).cookie(2));
  Delivery d;
  REQUIRE_ERR(f.bus.recv(b, kRecvDrop, 0, d), 0);
  CHECK_EQ(f.drain(b), V{"call :1.0 c=2 [A]"});
}

TEST(message, "without the priority flag the queue is FIFO") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.send(a, f.call(b).cookie(1).priority(5));
  f.send(a, f.call(b).cookie(2).priority(-5));
  CHECK_EQ(f.drain(b), (V{"call :1.0 c=1 p=5 [A]", "call :1.0 c=2 p=-5 [A]"}));
}

TEST(message, "by priority: lowest value first, oldest among equals") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.send(a, f.call(b).cookie(1).priority(3));
  f.send(a, f.call(b).cookie(2).priority(-1));
  f.send(a, f.call(b).cookie(3).priority(3));
  f.send(a, f.call(b).cookie(4).priority(-1));
  V got;
  Delivery d;
  while (f.bus.recv(b, kRecvUsePriority, INT64_MAX, d) == 0) got.push_back(describe(d));
  CHECK_EQ(got, (V{"call :1.0 c=2 p=-1 [A]", "call :1.0 c=4 p=-1 [A]", "call :1.0 c=1 p=3 [A]",
                   "call :1.0 c=3 p=3 [A]"}));
}

TEST(message, "by priority: nothing at or below the bound is EAGAIN") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.send(a, f.call(b).cookie(1).priority(10));
  f.send(a, f.call(b).cookie(2).priority(4));
  Delivery d;
  CHECK_ERR(f.bus.recv(b, kRecvUsePriority, 3, d), EAGAIN);
  REQUIRE_ERR(f.bus.recv(b, kRecvUsePriority | kRecvPeek, 4, d), 0);
  CHECK_EQ(describe(d), std::string("call :1.0 c=2 p=4 [A]"));
  REQUIRE_ERR(f.bus.recv(b, kRecvUsePriority, 4, d), 0);
  CHECK_EQ(f.drain(b), V{"call :1.0 c=1 p=10 [A]"});
}

TEST(message, "seqnums follow the global order") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  f.send(a, f.call(b).cookie(1));
  f.send(a, f.call(c).cookie(2));
  f.send(b, f.call(c).cookie(3));
  Delivery d1, d2, d3;
  REQUIRE_ERR(f.bus.recv(b, 0, 0, d1), 0);
  REQUIRE_ERR(f.bus.recv(c, 0, 0, d2), 0);
  REQUIRE_ERR(f.bus.recv(c, 0, 0, d3), 0);
  CHECK(d1.msg->seqnum < d2.msg->seqnum);
  CHECK(d2.msg->seqnum < d3.msg->seqnum);
  CHECK_EQ(d3.msg->src_id, b);
}

TEST(message, "fds to a connection that does not accept them are ECOMM") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1).fds(1)), ECOMM);
  CHECK_ERR(f.send(b, f.call(a).cookie(2).fds(2)), 0);
  Delivery d;
  REQUIRE_ERR(f.bus.recv(a, 0, 0, d), 0);
  CHECK_EQ(d.msg->fds->fds.size(), 2u);
}

TEST(message, "a broadcast with fds skips receivers that do not accept them") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(0), c = f.hello();
  REQUIRE_ERR(f.add_match(b, "type='signal'"), 0);
  REQUIRE_ERR(f.add_match(c, "type='signal'"), 0);
  CHECK_ERR(f.send(a, f.signal().cookie(1).fds(1)), 0);
  CHECK_EQ(f.drain(b), V{});
  CHECK_EQ(f.drain(c), V{"signal :1.0 c=1 Sig [M]"});
  CHECK(f.rec.overflow.empty());
}

TEST(message, "a failed send changes nothing") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1).fds(1)), ECOMM);
  // No reply wait was registered: an answer from b is unrequested.
  CHECK_ERR(f.send(b, f.reply(a, 1).cookie(2)), EPERM);
  CHECK_EQ(f.bus.stats().messages_sent, 0u);
  CHECK_EQ(f.drain(b), V{});
}
