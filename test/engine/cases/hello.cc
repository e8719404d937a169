// HELLO and the connection's life: ids, roles, announcement, UPDATE.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(hello, "ids count from 1 and unique names from :1.0") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  CHECK_EQ(a, 1u);
  CHECK_EQ(b, 2u);
  CHECK_EQ(unique_name(a), std::string(":1.0"));
  CHECK_EQ(unique_name(b), std::string(":1.1"));
}

TEST(hello, "unknown flag is EINVAL") {
  Fixture f;
  ConnId id = 0;
  CHECK_ERR(f.hello_with(1ull << 40, "", id), EINVAL);
}

TEST(hello, "two special roles at once are EINVAL") {
  Fixture f;
  ConnId id = 0;
  CHECK_ERR(f.hello_with(kHelloMonitor | kHelloPolicyHolder, "", id), EINVAL);
  CHECK_ERR(f.hello_with(kHelloMonitor | kHelloActivator, "a.b", id), EINVAL);
}

TEST(hello, "activator names are checked") {
  Fixture f;
  ConnId id = 0;
  CHECK_ERR(f.hello_with(kHelloActivator, "", id), EINVAL);
  CHECK_ERR(f.hello_with(kHelloActivator, "not a name", id), EINVAL);
  CHECK_ERR(f.hello_with(kHelloActivator, ":1.5", id), EPERM);
  CHECK_ERR(f.hello_with(kHelloActivator, "org.freedesktop.DBus", id), EPERM);
}

TEST(hello, "a second activator for a name is EEXIST") {
  Fixture f;
  f.activator("org.test.A");
  ConnId id = 0;
  CHECK_ERR(f.hello_with(kHelloActivator, "org.test.A", id), EEXIST);
}

TEST(hello, "an activator name without the activator flag is EINVAL") {
  Fixture f;
  ConnId id = 0;
  CHECK_ERR(f.hello_with(0, "org.test.A", id), EINVAL);
}

TEST(hello, "a refused HELLO uses up no id") {
  Fixture f;
  ConnId id = 0;
  CHECK_ERR(f.hello_with(kHelloMonitor | kHelloPolicyHolder, "", id), EINVAL);
  CHECK_EQ(f.hello(), 1u);
}

TEST(hello, "hidden connections keep unique names dense") {
  Fixture f;
  ConnId a = f.hello();
  ConnId act = f.activator("org.test.A");
  ConnId holder = f.hello(kHelloPolicyHolder);
  ConnId b = f.hello();
  CHECK_EQ(a, 1u);
  CHECK_EQ(b, 2u);
  CHECK(act > 1000);
  CHECK(holder > 1000);
  CHECK(act != holder);
}

TEST(hello, "IdAdd reaches connections with a matching rule") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal',member='NameOwnerChanged'"), 0);
  ConnId b = f.hello();
  ConnId c = f.hello();
  CHECK_EQ(f.drain(a), (V{"IdAdd " + unique_name(b) + " [M]", "IdAdd " + unique_name(c) + " [M]"}));
  CHECK_EQ(f.drain(b), V{});
}

TEST(hello, "special connections are not announced") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal'"), 0);
  f.activator("org.test.A");
  f.monitor();
  f.hello(kHelloPolicyHolder);
  CHECK_EQ(f.drain(a), V{});
}

TEST(hello, "defer_announce holds IdAdd until announce") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal'"), 0);
  HelloParams p;
  p.defer_announce = true;
  ConnId b = 0;
  REQUIRE_ERR(f.bus.hello(std::move(p), b), 0);
  CHECK_EQ(f.drain(a), V{});
  CHECK_ERR(f.bus.announce(b), 0);
  CHECK_EQ(f.drain(a), V{"IdAdd :1.1 [M]"});
  CHECK_ERR(f.bus.announce(b), EALREADY);
  CHECK_ERR(f.bus.announce(99), ENXIO);
  CHECK_ERR(f.bus.announce(f.monitor()), EPERM);
}

TEST(hello, "a connection never announced leaves without IdRemove") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal'"), 0);
  HelloParams p;
  p.defer_announce = true;
  ConnId b = 0;
  REQUIRE_ERR(f.bus.hello(std::move(p), b), 0);
  CHECK_ERR(f.bus.disconnect(b), 0);
  CHECK_EQ(f.drain(a), V{});
}

TEST(hello, "disconnect emits IdRemove and forgets the id") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal'"), 0);
  CHECK_ERR(f.bus.disconnect(b), 0);
  CHECK_EQ(f.drain(a), V{"IdRemove :1.1 [M]"});
  CHECK_ERR(f.bus.disconnect(b), ENXIO);
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), ENXIO);
  ConnId c = f.hello();
  CHECK_EQ(c, 3u);  // ids are never reused
}

TEST(hello, "queue_ready fires when a queue turns non-empty, with the owner") {
  Fixture f;
  int token = 0;
  HelloParams p;
  p.owner = &token;
  ConnId b = 0;
  REQUIRE_ERR(f.bus.hello(std::move(p), b), 0);
  ConnId a = f.hello();
  f.rec.ready.clear();
  f.rec.owners.clear();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(2)), 0);
  CHECK_EQ(f.rec.ready, std::vector<ConnId>{b});
  CHECK(f.rec.owners.size() == 1 && f.rec.owners[0] == &token);
  f.drain(b);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(3)), 0);
  CHECK_EQ(f.rec.ready, (std::vector<ConnId>{b, b}));
}

TEST(hello, "monitors and policy holders may not send or own names") {
  Fixture f;
  ConnId a = f.hello();
  ConnId m = f.monitor();
  ConnId h = f.hello(kHelloPolicyHolder);
  for (ConnId id : {m, h}) {
    CHECK_ERR(f.send(id, f.call(a).cookie(1)), EPERM);
    CHECK_ERR(f.send(id, f.signal().cookie(1)), EPERM);
    CHECK_ERR(f.acquire(id, "org.test.A"), EPERM);
    CHECK_ERR(f.bus.name_release(id, "org.test.A"), EPERM);
  }
}

TEST(hello, "special connections cannot be addressed") {
  Fixture f;
  ConnId a = f.hello();
  ConnId m = f.monitor();
  ConnId h = f.hello(kHelloPolicyHolder);
  ConnId act = f.activator("org.test.A");
  CHECK_ERR(f.send(a, f.call(m).cookie(1)), ENXIO);
  CHECK_ERR(f.send(a, f.call(h).cookie(1)), ENXIO);
  CHECK_ERR(f.send(a, f.call(act).cookie(1)), ENXIO);
  CHECK_ERR(f.send(a, f.call(unique_name(m)).cookie(1)), ESRCH);
  ConnId out = 0;
  CHECK_ERR(f.bus.name_owner(unique_name(m), out), ESRCH);
}

TEST(hello, "UPDATE changes the description CONN_INFO shows") {
  Fixture f;
  HelloParams p;
  p.description = "first";
  ConnId a = 0;
  REQUIRE_ERR(f.bus.hello(std::move(p), a), 0);
  ConnInfo info;
  REQUIRE_ERR(f.bus.conn_info(a, "", info), 0);
  CHECK_EQ(info.description, std::string("first"));
  CHECK_ERR(f.bus.update(a, "second"), 0);
  REQUIRE_ERR(f.bus.conn_info(a, "", info), 0);
  CHECK_EQ(info.description, std::string("second"));
  CHECK_ERR(f.bus.update(77, "x"), ENXIO);
}

TEST(hello, "stats count connections, names, rules and messages") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.acquire(a, "org.test.A");
  f.add_match(b, "type='signal'");
  f.add_match(b, "member='X'", 2);
  f.send(a, f.call(b).cookie(1));
  BusStats st = f.bus.stats();
  CHECK_EQ(st.connections, 2u);
  CHECK_EQ(st.names, 1u);
  CHECK_EQ(st.match_rules, 2u);
  CHECK_EQ(st.messages_sent, 1u);
  f.bus.disconnect(b);
  CHECK_EQ(f.bus.stats().match_rules, 0u);
  CHECK_EQ(f.bus.stats().connections, 1u);
}
