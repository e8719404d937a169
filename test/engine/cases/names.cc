// NAME_ACQUIRE / NAME_RELEASE: dbus-daemon's RequestName semantics.
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

namespace {
std::vector<ConnId> owners(Fixture& f, std::string_view name) {
  std::vector<ConnId> v;
  f.bus.queued_owners(name, v);
  return v;
}
}  // namespace

TEST(names, "a free name is acquired and NameAcquired queued") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_EQ(f.acquire_flags(a, "org.test.A"), uint64_t{kNameAcquired | kNamePrimary});
  CHECK_EQ(f.drain(a), V{"NameAdd org.test.A :1.0 [N]"});
  ConnId o = 0;
  CHECK_ERR(f.bus.name_owner("org.test.A", o), 0);
  CHECK_EQ(o, a);
}

TEST(names, "the owner asking again is EALREADY") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  uint64_t rf = 0;
  CHECK_ERR(f.bus.name_acquire(a, "org.test.A", kNameAllowReplacement, rf), EALREADY);
  CHECK_EQ(rf, uint64_t{kNamePrimary});
  // The stored flags changed: a replacement now succeeds.
  ConnId b = f.hello();
  CHECK_EQ(f.acquire_flags(b, "org.test.A", kNameReplaceExisting), uint64_t{kNameAcquired | kNamePrimary});
}

TEST(names, "taken and not queueing is EEXIST") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_ERR(f.acquire(b, "org.test.A"), EEXIST);
  CHECK_ERR(f.acquire(b, "org.test.A", kNameReplaceExisting), EEXIST);
  CHECK_EQ(owners(f, "org.test.A"), std::vector<ConnId>{a});
}

TEST(names, "queueing waits in order") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_EQ(f.acquire_flags(b, "org.test.A", kNameQueue), uint64_t{kNameInQueue});
  CHECK_EQ(f.acquire_flags(c, "org.test.A", kNameQueue), uint64_t{kNameInQueue});
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, b, c}));
  CHECK_EQ(f.drain(b), V{});
}

TEST(names, "a waiter asking again stays in place") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  REQUIRE_ERR(f.acquire(c, "org.test.A", kNameQueue), 0);
  CHECK_EQ(f.acquire_flags(b, "org.test.A", kNameQueue), uint64_t{kNameInQueue});
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, b, c}));
}

TEST(names, "a waiter asking without queueing leaves the queue") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  REQUIRE_ERR(f.acquire(c, "org.test.A", kNameQueue), 0);
  CHECK_ERR(f.acquire(b, "org.test.A"), EEXIST);
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, c}));
}

TEST(names, "a waiter asking to replace moves to the front of the queue") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  REQUIRE_ERR(f.acquire(c, "org.test.A", kNameQueue), 0);
  CHECK_EQ(f.acquire_flags(c, "org.test.A", kNameQueue | kNameReplaceExisting), uint64_t{kNameInQueue});
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, c, b}));
}

TEST(names, "a new replacement request waits ahead of earlier waiters") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  CHECK_EQ(f.acquire_flags(c, "org.test.A", kNameQueue | kNameReplaceExisting), uint64_t{kNameInQueue});
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, c, b}));
}

TEST(names, "replacement: the old owner that queues goes right behind") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A", kNameAllowReplacement | kNameQueue), 0);
  REQUIRE_ERR(f.acquire(c, "org.test.A", kNameQueue), 0);
  f.drain(a);
  CHECK_EQ(f.acquire_flags(b, "org.test.A", kNameReplaceExisting), uint64_t{kNameAcquired | kNamePrimary});
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{b, a, c}));
  CHECK_EQ(f.drain(a), V{"NameChange org.test.A :1.0 :1.1 [O]"});
  CHECK_EQ(f.drain(b), V{"NameChange org.test.A :1.0 :1.1 [N]"});
}

TEST(names, "replacement: the old owner that does not queue drops out") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A", kNameAllowReplacement), 0);
  CHECK_ERR(f.acquire(b, "org.test.A", kNameReplaceExisting), 0);
  CHECK_EQ(owners(f, "org.test.A"), std::vector<ConnId>{b});
  ConnInfo info;
  REQUIRE_ERR(f.bus.conn_info(a, "", info), 0);
  CHECK_EQ(info.names, std::vector<std::string>{});
}

TEST(names, "replacement refused by the owner queues the asker") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_EQ(f.acquire_flags(b, "org.test.A", kNameReplaceExisting | kNameQueue), uint64_t{kNameInQueue});
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, b}));
}

TEST(names, "release hands the name to the first waiter") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), w = f.hello();
  REQUIRE_ERR(f.add_match(w, "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"), 0);
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  f.drain(a);
  f.drain(w);
  CHECK_ERR(f.bus.name_release(a, "org.test.A"), 0);
  CHECK_EQ(f.drain(a), V{"NameChange org.test.A :1.0 :1.1 [O]"});
  CHECK_EQ(f.drain(b), V{"NameChange org.test.A :1.0 :1.1 [N]"});
  CHECK_EQ(f.drain(w), V{"NameChange org.test.A :1.0 :1.1 [M]"});
}

TEST(names, "the last owner releasing removes the name") {
  Fixture f;
  ConnId a = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  f.drain(a);
  CHECK_ERR(f.bus.name_release(a, "org.test.A"), 0);
  CHECK_EQ(f.drain(a), V{"NameRemove org.test.A :1.0 [O]"});
  ConnId o = 0;
  CHECK_ERR(f.bus.name_owner("org.test.A", o), ESRCH);
  CHECK_ERR(f.bus.name_release(a, "org.test.A"), ESRCH);
  CHECK_EQ(f.bus.stats().names, 0u);
}

TEST(names, "release errors") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_ERR(f.bus.name_release(b, "org.test.A"), EADDRINUSE);
  CHECK_ERR(f.bus.name_release(b, "org.test.None"), ESRCH);
  CHECK_ERR(f.bus.name_release(b, "bad..name"), EINVAL);
  CHECK_ERR(f.bus.name_release(b, ":1.0"), EPERM);
  CHECK_ERR(f.bus.name_release(9, "org.test.A"), ENXIO);
}

TEST(names, "a waiter releasing leaves silently") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), w = f.hello();
  REQUIRE_ERR(f.add_match(w, "type='signal'"), 0);
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  f.drain(w);
  CHECK_ERR(f.bus.name_release(b, "org.test.A"), 0);
  CHECK_EQ(f.drain(w), V{});
  CHECK_EQ(f.drain(b), V{});
  CHECK_EQ(owners(f, "org.test.A"), std::vector<ConnId>{a});
}

TEST(names, "names the bus keeps and malformed names are refused") {
  Fixture f;
  ConnId a = f.hello();
  CHECK_ERR(f.acquire(a, ":1.0"), EPERM);
  CHECK_ERR(f.acquire(a, "org.freedesktop.DBus"), EPERM);
  CHECK_ERR(f.acquire(a, "nodots"), EINVAL);
  CHECK_ERR(f.acquire(a, ""), EINVAL);
  CHECK_ERR(f.acquire(a, "org.1test"), EINVAL);
  CHECK_ERR(f.acquire(a, std::string(256, 'a') + ".b"), EINVAL);
  CHECK_ERR(f.acquire(9, "org.test.A"), ENXIO);
  CHECK_EQ(f.drain(a), V{});
}

TEST(names, "disconnect releases every name, the last joined first") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), w = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.X"), 0);
  REQUIRE_ERR(f.acquire(a, "org.test.Y"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.X", kNameQueue), 0);
  REQUIRE_ERR(f.add_match(w, "type='signal'"), 0);
  CHECK_ERR(f.bus.disconnect(a), 0);
  CHECK_EQ(f.drain(w), (V{"NameRemove org.test.Y :1.0 [M]", "NameChange org.test.X :1.0 :1.1 [M]",
                          "IdRemove :1.0 [M]"}));
  CHECK_EQ(f.drain(b), V{"NameChange org.test.X :1.0 :1.1 [N]"});
}

TEST(names, "a waiter disconnecting leaves the queue quietly") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.A", kNameQueue), 0);
  REQUIRE_ERR(f.acquire(c, "org.test.A", kNameQueue), 0);
  f.drain(a);
  CHECK_ERR(f.bus.disconnect(b), 0);
  CHECK_EQ(owners(f, "org.test.A"), (std::vector<ConnId>{a, c}));
  CHECK_EQ(f.drain(a), V{});
}

TEST(names, "name_owner resolves unique names of ordinary peers") {
  Fixture f;
  ConnId a = f.hello();
  ConnId o = 0;
  CHECK_ERR(f.bus.name_owner(":1.0", o), 0);
  CHECK_EQ(o, a);
  CHECK_ERR(f.bus.name_owner(":1.1", o), ESRCH);
  CHECK_ERR(f.bus.name_owner(":1.01", o), ESRCH);
  CHECK_ERR(f.bus.name_owner(":2.0", o), ESRCH);
  CHECK_ERR(f.bus.name_owner("org.test.None", o), ESRCH);
}

TEST(names, "queued_owners of an unowned name is ESRCH") {
  Fixture f;
  std::vector<ConnId> v;
  CHECK_ERR(f.bus.queued_owners("org.test.A", v), ESRCH);
  f.activator("org.test.A");
  CHECK_ERR(f.bus.queued_owners("org.test.A", v), ESRCH);
}

TEST(names, "the name limit counts the unique name") {
  Fixture f;
  BusLimits l;
  l.max_names = 3;
  f.bus.set_limits(l);
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(b, "org.test.Q"), 0);
  CHECK_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_ERR(f.acquire(a, "org.test.Q", kNameQueue), 0);
  CHECK_ERR(f.acquire(a, "org.test.C"), E2BIG);
  CHECK_ERR(f.acquire(a, "org.test.A"), EALREADY);  // held already: not a new one
  REQUIRE_ERR(f.bus.name_release(a, "org.test.Q"), 0);
  CHECK_ERR(f.acquire(a, "org.test.C"), 0);
}

TEST(names, "NameOwnerChanged carries its args for arg matching") {
  Fixture f;
  ConnId a = f.hello(), w = f.hello();
  REQUIRE_ERR(f.add_match(w, "type='signal',member='NameOwnerChanged',arg0='org.test.A',arg1=''"), 0);
  REQUIRE_ERR(f.add_match(w, "type='signal',member='NameOwnerChanged',arg2=':1.0'", 2), 0);
  REQUIRE_ERR(f.acquire(a, "org.test.B"), 0);
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_EQ(f.drain(w), (V{"NameAdd org.test.B :1.0 [M]", "NameAdd org.test.A :1.0 [M]"}));
  REQUIRE_ERR(f.bus.name_release(a, "org.test.A"), 0);
  REQUIRE_ERR(f.bus.name_release(a, "org.test.B"), 0);
  CHECK_EQ(f.drain(w), V{});
}
