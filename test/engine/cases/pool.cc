// The pieces messages are made of: body buffers, accounts and charges,
// unique names, name syntax.
#include "../../../kdbus-native/engine/pool.h"
#include "../../../kdbus-native/engine/validate.h"
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

TEST(pool, "a returned buffer is reused for a request it fits") {
  BufferPool pool(4, 1 << 20, 1 << 22);
  const uint8_t* first = nullptr;
  {
    auto b = pool.take(100, 4096);
    CHECK_EQ(b->size(), 4096u);
    first = b->data();
  }
  CHECK_EQ(pool.idle(), 1u);
  CHECK_EQ(pool.idle_bytes(), 4096u);
  auto again = pool.take(1000, 8192);
  CHECK(again->data() == first);
  CHECK_EQ(pool.idle(), 0u);
  auto bigger = pool.take(5000, 8192);
  CHECK_EQ(bigger->size(), 8192u);
}

TEST(pool, "the smallest idle buffer that fits is taken") {
  BufferPool pool(4, 1 << 20, 1 << 22);
  { auto a = pool.take(1, 1000), b = pool.take(1, 3000), c = pool.take(1, 2000); }
  CHECK_EQ(pool.idle(), 3u);
  auto t = pool.take(1500, 10);
  CHECK_EQ(t->size(), 2000u);
  CHECK_EQ(pool.idle_bytes(), 4000u);
}

TEST(pool, "oversized buffers and buffers past the idle budget are freed") {
  BufferPool pool(4, 1000, 1500);
  { auto big = pool.take(1, 2000); }
  CHECK_EQ(pool.idle(), 0u);
  { auto a = pool.take(1, 800), b = pool.take(1, 900); }
  CHECK_EQ(pool.idle(), 1u);
  CHECK(pool.idle_bytes() <= 1500u);
}

TEST(pool, "a full pool keeps the larger buffers") {
  BufferPool pool(2, 10000, 100000);
  { auto a = pool.take(1, 100), b = pool.take(1, 200); }
  CHECK_EQ(pool.idle_bytes(), 300u);
  { auto c = pool.take(1, 50); }  // smaller than all: dropped
  CHECK_EQ(pool.idle_bytes(), 300u);
  { auto a = pool.take(1000, 500); }  // new, replaces the 100
  CHECK_EQ(pool.idle(), 2u);
  CHECK_EQ(pool.idle_bytes(), 700u);
  BufferPool tight(1, 10000, 300);
  { auto a = tight.take(1, 200); }
  { auto b = tight.take(500, 400); }  // larger, but over the idle budget
  CHECK_EQ(tight.idle_bytes(), 200u);
}

TEST(pool, "a buffer outliving its pool is simply freed") {
  std::shared_ptr<std::vector<uint8_t>> keep;
  {
    BufferPool pool(2, 1000, 1000);
    keep = pool.take(1, 10);
  }
  CHECK_EQ(keep->size(), 10u);
  keep.reset();
}

namespace {
struct Drained : AccountListener {
  int calls = 0;
  void account_drained(Account&) override { ++calls; }
};
}  // namespace

TEST(account, "a charge holds bytes and fds until released, sender and user alike") {
  auto acc = std::make_shared<Account>();
  auto user = std::make_shared<Account>();
  const size_t total_before = Account::total_bytes();
  {
    Charge c(acc, user, 100, 2);
    CHECK_EQ(acc->bytes(), 100u);
    CHECK_EQ(acc->fds(), 2u);
    CHECK_EQ(user->bytes(), 100u);
    CHECK_EQ(Account::total_bytes(), total_before + 100);
    Charge moved(std::move(c));
    CHECK_EQ(acc->bytes(), 100u);
    Charge assigned;
    assigned = std::move(moved);
    CHECK_EQ(acc->bytes(), 100u);
  }
  CHECK_EQ(acc->bytes(), 0u);
  CHECK_EQ(user->bytes(), 0u);
  CHECK_EQ(Account::total_bytes(), total_before);
}

TEST(account, "an account over its limit is told once it drains") {
  auto acc = std::make_shared<Account>();
  Drained d;
  acc->set_listener(&d);
  auto c1 = std::make_unique<Charge>(acc, nullptr, 60, 0);
  auto c2 = std::make_unique<Charge>(acc, nullptr, 60, 1);
  CHECK(acc->over(100, 0));
  CHECK(acc->over(0, 1));
  CHECK(!acc->over(0, 0));
  c1.reset();
  CHECK_EQ(d.calls, 0);  // 60 bytes < 100 but still 1 fd >= 1
  c2.reset();
  CHECK_EQ(d.calls, 1);
  Charge again(acc, nullptr, 10, 0);
  CHECK_EQ(d.calls, 1);  // not waiting any more
  acc->set_listener(nullptr);
}

TEST(unique_name, "round trip and refusals") {
  ConnId id = 0;
  CHECK(parse_unique_name(":1.0", id));
  CHECK_EQ(id, 1u);
  CHECK(parse_unique_name(unique_name(123456), id));
  CHECK_EQ(id, 123456u);
  for (const char* bad : {":1.", ":1.01", ":1.-1", ":2.5", "1.5", ":1.5a", ":1.99999999999999999999",
                          ":1.18446744073709551614"}) {
    CHECK(!parse_unique_name(bad, id));
  }
}

TEST(validate, "bus names, namespaces, interfaces, members, paths") {
  CHECK(valid_bus_name("org.test.A"));
  CHECK(valid_bus_name(":1.5"));
  CHECK(valid_bus_name("a-b.c_d"));
  CHECK(!valid_bus_name("org"));
  CHECK(!valid_bus_name("org..a"));
  CHECK(!valid_bus_name(".org.a"));
  CHECK(!valid_bus_name("org.a."));
  CHECK(!valid_bus_name("org.1a"));
  CHECK(valid_bus_name(":1.1a"));
  CHECK(!valid_bus_name("org.a$"));
  CHECK(!valid_bus_name(""));
  CHECK(!valid_bus_name(std::string(254, 'a') + ".b"));
  CHECK(valid_bus_namespace("org"));
  CHECK(!valid_bus_namespace(":1.2"));
  CHECK(!valid_bus_namespace(""));
  CHECK(valid_interface_name("org.test.I"));
  CHECK(!valid_interface_name("org"));
  CHECK(!valid_interface_name("org.a-b"));
  CHECK(!valid_interface_name(""));
  CHECK(valid_member_name("Get_2"));
  CHECK(!valid_member_name("2Get"));
  CHECK(!valid_member_name("a.b"));
  CHECK(!valid_member_name(""));
  CHECK(!valid_member_name(std::string(256, 'a')));
  CHECK(valid_object_path("/"));
  CHECK(valid_object_path("/a/b_c/D1"));
  CHECK(!valid_object_path(""));
  CHECK(!valid_object_path("a"));
  CHECK(!valid_object_path("/a/"));
  CHECK(!valid_object_path("/a//b"));
  CHECK(!valid_object_path("/a-b"));
}
