// Bounds: receive queues (messages, bytes, fds) and per-user totals.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(limits, "a full queue refuses unicast with ENOBUFS") {
  Fixture f;
  BusLimits l;
  l.max_queued_messages = 2;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(2)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(3)), ENOBUFS);
  // The refused call registered no wait.
  CHECK_ERR(f.send(b, f.reply(a, 3).cookie(1)), EPERM);
  f.drain(b);
  CHECK_ERR(f.send(a, f.call(b).cookie(3)), 0);
}

TEST(limits, "queued bytes are bounded") {
  Fixture f;
  BusLimits l;
  l.max_queued_bytes = 100;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1).bytes(60)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(2).bytes(41)), ENOBUFS);
  CHECK_ERR(f.send(a, f.call(b).cookie(3).bytes(40)), 0);
  Delivery d;
  REQUIRE_ERR(f.bus.recv(b, 0, 0, d), 0);
  CHECK_EQ(d.msg->payload.size(), 60u);
  CHECK_ERR(f.send(a, f.call(b).cookie(4).bytes(60)), 0);
}

TEST(limits, "queued fds are bounded; messages without fds still pass") {
  Fixture f;
  BusLimits l;
  l.max_queued_fds = 3;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1).fds(2)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(2).fds(2)), ENOBUFS);
  CHECK_ERR(f.send(a, f.call(b).cookie(3)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(4).fds(1)), 0);
  Delivery d;
  REQUIRE_ERR(f.bus.recv(b, 0, 0, d), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(5).fds(2)), 0);
}

TEST(limits, "a broadcast skips a full queue and reports the overflow") {
  Fixture f;
  BusLimits l;
  l.max_queued_messages = 1;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.add_match(b, "member='Sig'"), 0);
  REQUIRE_ERR(f.add_match(c, "member='Sig'"), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_ERR(f.send(a, f.signal("Sig").cookie(2)), 0);
  CHECK_EQ(f.rec.overflow, std::vector<ConnId>{b});
  CHECK_EQ(f.drain(b), V{"call :1.0 c=1 [A]"});
  CHECK_EQ(f.drain(c), V{"signal :1.0 c=2 Sig [M]"});
}

TEST(limits, "eavesdropped copies to a full queue are dropped quietly") {
  Fixture f;
  BusLimits l;
  l.max_queued_messages = 1;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello(), e = f.hello();
  REQUIRE_ERR(f.add_match(e, "eavesdrop=true"), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  f.drain(b);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(2)), 0);
  CHECK_EQ(f.drain(e), V{"call :1.0 c=1 [E]"});
  CHECK(f.rec.overflow.empty());
}

TEST(limits, "match rules per user are bounded across connections") {
  Fixture f;
  BusLimits l;
  l.max_match_rules_per_user = 3;
  f.bus.set_limits(l);
  ConnId a = f.hello_uid(1000), b = f.hello_uid(1000), c = f.hello_uid(1001);
  CHECK_ERR(f.add_match(a, "member='A'", 1), 0);
  CHECK_ERR(f.add_match(a, "member='B'", 2), 0);
  CHECK_ERR(f.add_match(b, "member='C'", 1), 0);
  CHECK_ERR(f.add_match(b, "member='D'", 2), EMFILE);
  CHECK_ERR(f.add_match(c, "member='D'", 1), 0);
  CHECK_ERR(f.bus.match_remove(a, 1), 0);
  CHECK_ERR(f.add_match(b, "member='D'", 2), 0);
  f.bus.disconnect(a);
  CHECK_ERR(f.add_match(b, "member='E'", 3), 0);
}

TEST(limits, "root is held to no user limit") {
  Fixture f;
  BusLimits l;
  l.max_match_rules_per_user = 1;
  l.max_names_per_user = 1;
  f.bus.set_limits(l);
  ConnId r = f.hello_uid(0);
  CHECK_ERR(f.add_match(r, "member='A'", 1), 0);
  CHECK_ERR(f.add_match(r, "member='B'", 2), 0);
  CHECK_ERR(f.acquire(r, "org.test.A"), 0);
  CHECK_ERR(f.acquire(r, "org.test.B"), 0);
}

TEST(limits, "names per user count owned and queued names") {
  Fixture f;
  BusLimits l;
  l.max_names_per_user = 2;
  f.bus.set_limits(l);
  ConnId a = f.hello_uid(1000), b = f.hello_uid(1000), other = f.hello_uid(1001);
  REQUIRE_ERR(f.acquire(other, "org.test.Q"), 0);
  CHECK_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_ERR(f.acquire(b, "org.test.Q", kNameQueue), 0);
  CHECK_ERR(f.acquire(b, "org.test.B"), E2BIG);
  CHECK_ERR(f.acquire(b, "org.test.Q", kNameQueue), 0);  // held already
  REQUIRE_ERR(f.bus.disconnect(other), 0);              // b moves from waiter to owner
  CHECK_ERR(f.acquire(b, "org.test.B"), E2BIG);
  REQUIRE_ERR(f.bus.disconnect(a), 0);
  CHECK_ERR(f.acquire(b, "org.test.B"), 0);
}

TEST(limits, "a user's names are freed by becoming a monitor") {
  Fixture f;
  BusLimits l;
  l.max_names_per_user = 1;
  f.bus.set_limits(l);
  ConnId a = f.hello_uid(1000), b = f.hello_uid(1000);
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_ERR(f.acquire(b, "org.test.B"), E2BIG);
  REQUIRE_ERR(f.bus.become_monitor(a, {}), 0);
  CHECK_ERR(f.acquire(b, "org.test.B"), 0);
}

TEST(limits, "pending replies per user are bounded across connections") {
  Fixture f;
  BusLimits l;
  l.max_pending_replies_per_user = 2;
  f.bus.set_limits(l);
  ConnId a = f.hello_uid(1000), b = f.hello_uid(1000), s = f.hello_uid(1001);
  CHECK_ERR(f.send(a, f.call(s).cookie(1)), 0);
  CHECK_ERR(f.send(b, f.call(s).cookie(1)), 0);
  CHECK_ERR(f.send(b, f.call(s).cookie(2)), EMLINK);
  CHECK_ERR(f.send(s, f.call(a).cookie(9)), 0);  // another user
  CHECK_ERR(f.send(s, f.reply(a, 1).cookie(1)), 0);
  CHECK_ERR(f.send(b, f.call(s).cookie(2)), 0);
  REQUIRE_ERR(f.bus.disconnect(b), 0);
  CHECK_ERR(f.send(a, f.call(s).cookie(3)), 0);
}

TEST(limits, "a moved wait still counts against its user") {
  Fixture f;
  BusLimits l;
  l.max_pending_replies_per_user = 1;
  f.bus.set_limits(l);
  f.activator("org.test.S");
  ConnId a = f.hello_uid(1000);
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1)), 0);
  ConnId s = f.hello_uid(1001);
  REQUIRE_ERR(f.acquire(s, "org.test.S"), 0);
  CHECK_ERR(f.send(a, f.call(s).cookie(2)), EMLINK);
  REQUIRE_ERR(f.send(s, f.reply(a, 1).cookie(1)), 0);
  CHECK_ERR(f.send(a, f.call(s).cookie(2)), 0);
}
