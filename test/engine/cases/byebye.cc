// BYEBYE: refused while messages are queued; otherwise the connection lets
// go of its names and is sent nothing new but replies to its own calls, until
// it disconnects.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(byebye, "with an empty queue it is unreachable, and goes when it disconnects") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal'"), 0);
  CHECK_ERR(f.bus.byebye(b), 0);
  CHECK_EQ(f.drain(a), V{});
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), ENXIO);
  CHECK_ERR(f.bus.disconnect(b), 0);
  CHECK_EQ(f.drain(a), V{"IdRemove :1.1 [M]"});
}

TEST(byebye, "it gets no broadcasts and may not own names") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(b, "type='signal'"), 0);
  CHECK_ERR(f.bus.byebye(b), 0);
  CHECK_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_EQ(f.drain(b), V{});
  CHECK_ERR(f.acquire(b, "org.test.B"), EPERM);
  CHECK_ERR(f.bus.become_monitor(b, {}), EPERM);
}

TEST(byebye, "replies to its own calls still reach it") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(b, f.call(a).cookie(3)), 0);
  CHECK_ERR(f.bus.byebye(b), 0);
  f.drain(a);
  CHECK_ERR(f.send(a, f.reply(b, 3).cookie(9)), 0);
  CHECK_EQ(f.drain(b).size(), 1u);
}

TEST(byebye, "refused with EBUSY while messages are queued") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_ERR(f.bus.byebye(b), EBUSY);
  // Still fully there.
  CHECK_EQ(f.drain(b), V{"call :1.0 c=1 [A]"});
  CHECK_ERR(f.send(b, f.reply(a, 1).cookie(5)), 0);
  CHECK_ERR(f.bus.byebye(b), 0);
}

TEST(byebye, "a second BYEBYE is EALREADY, an unknown id ENXIO") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.bus.byebye(a), 0);
  CHECK_ERR(f.bus.byebye(a), EALREADY);
  CHECK_ERR(f.bus.byebye(42), ENXIO);
}

TEST(byebye, "the socket closing after BYEBYE is quiet, once") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.bus.byebye(a), 0);
  CHECK_ERR(f.bus.disconnect(a), 0);
  CHECK_ERR(f.bus.disconnect(a), ENXIO);
}

TEST(byebye, "names pass to the next in queue") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  f.drain(a);
  f.drain(b);
  CHECK_ERR(f.bus.byebye(a), 0);
  CHECK_EQ(f.drain(b), V{"NameChange org.test.A :1.0 :1.1 [N]"});
  ConnId owner = 0;
  CHECK_ERR(f.bus.name_owner("org.test.A", owner), 0);
  CHECK_EQ(owner, b);
}

TEST(byebye, "it still answers a call it received; ReplyDead only when it goes") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(7)), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(8)), 0);
  f.drain(b);
  CHECK_ERR(f.bus.byebye(b), 0);
  CHECK_EQ(f.drain(a), V{});
  CHECK_ERR(f.send(b, f.reply(a, 7).cookie(1)), 0);
  CHECK_EQ(f.drain(a).size(), 1u);
  CHECK_ERR(f.bus.disconnect(b), 0);
  CHECK_EQ(f.drain(a), V{"ReplyDead r=8 :1.1 [A]"});
}

TEST(byebye, "is for ordinary peers: a monitor gets EPERM") {
  Fixture f;
  ConnId m = f.monitor();
  CHECK_ERR(f.bus.byebye(m), EPERM);
}
