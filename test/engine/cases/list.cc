// LIST and CONN_INFO.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

TEST(list, "unique names of ordinary peers, in id order") {
  Fixture f;
  f.hello();
  f.monitor();
  f.activator("org.test.S");
  f.hello();
  CHECK_EQ(f.listing(kListUnique), (V{":1.0 :1.0 0", ":1.2 :1.2 0"}));
}

TEST(list, "well-known names with their primary owner and stored flags") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  f.acquire(b, "org.test.B", kNameAllowReplacement);
  f.acquire(a, "org.test.A");
  f.acquire(a, "org.test.B", kNameQueue);
  const std::string p = std::to_string(kNamePrimary);
  CHECK_EQ(f.listing(kListNames),
           (V{"org.test.A :1.0 " + p, "org.test.B :1.1 " + std::to_string(kNamePrimary | kNameAllowReplacement)}));
  CHECK_EQ(f.listing(kListNames | kListQueued),
           (V{"org.test.A :1.0 " + p, "org.test.B :1.1 " + std::to_string(kNamePrimary | kNameAllowReplacement),
              "org.test.B :1.0 " + std::to_string(kNameQueue | kNameInQueue)}));
}

TEST(list, "everything at once, unique names first") {
  Fixture f;
  ConnId a = f.hello();
  ConnId act = f.activator("org.test.S");
  f.acquire(a, "org.test.A");
  CHECK_EQ(f.listing(kListUnique | kListNames | kListActivators),
           (V{":1.0 :1.0 0", "org.test.A :1.0 " + std::to_string(kNamePrimary),
              "org.test.S " + unique_name(act) + " " + std::to_string(kNameActivator)}));
  CHECK_EQ(f.listing(0), V{});
}

TEST(list, "a name with an owner and an activator lists both") {
  Fixture f;
  ConnId act = f.activator("org.test.S");
  ConnId a = f.hello();
  f.acquire(a, "org.test.S");
  CHECK_EQ(f.listing(kListNames | kListActivators),
           (V{"org.test.S :1.0 " + std::to_string(kNamePrimary),
              "org.test.S " + unique_name(act) + " " + std::to_string(kNameActivator)}));
}

TEST(conn_info, "by id, unique name and well-known name") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(kHelloAcceptFd);
  f.acquire(b, "org.test.Z");
  f.acquire(b, "org.test.B");
  f.acquire(a, "org.test.Q");
  f.acquire(b, "org.test.Q", kNameQueue);
  ConnInfo i;
  REQUIRE_ERR(f.bus.conn_info(b, "", i), 0);
  CHECK_EQ(i.id, b);
  CHECK_EQ(i.flags, uint64_t{kHelloAcceptFd});
  CHECK_EQ(i.names, (std::vector<std::string>{"org.test.B", "org.test.Z"}));
  CHECK(i.metadata != nullptr);
  ConnInfo j;
  REQUIRE_ERR(f.bus.conn_info(0, ":1.1", j), 0);
  CHECK_EQ(j.id, b);
  ConnInfo k;
  REQUIRE_ERR(f.bus.conn_info(0, "org.test.Z", k), 0);
  CHECK_EQ(k.id, b);
  REQUIRE_ERR(f.bus.conn_info(0, "org.test.Q", k), 0);
  CHECK_EQ(k.id, a);
}

TEST(conn_info, "errors") {
  Fixture f;
  f.hello();
  ConnInfo i;
  CHECK_ERR(f.bus.conn_info(5, "", i), ENXIO);
  CHECK_ERR(f.bus.conn_info(0, ":1.5", i), ENXIO);
  CHECK_ERR(f.bus.conn_info(0, ":junk", i), ENXIO);
  CHECK_ERR(f.bus.conn_info(0, "org.test.None", i), ESRCH);
}

TEST(conn_info, "special connections report their role flags") {
  Fixture f;
  ConnId m = f.monitor();
  ConnInfo i;
  REQUIRE_ERR(f.bus.conn_info(m, "", i), 0);
  CHECK_EQ(i.flags, uint64_t{kHelloMonitor | kHelloAcceptFd});
  ConnId a = f.hello();
  REQUIRE_ERR(f.bus.become_monitor(a, {}), 0);
  REQUIRE_ERR(f.bus.conn_info(a, "", i), 0);
  CHECK(i.flags & kHelloMonitor);
}
