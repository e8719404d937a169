// Handover snapshots: a bus saved and loaded into a fresh one behaves as the
// original does, command for command; a snapshot that cannot be read is
// refused with a reason.
#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <string>

#include "../../../kdbus-native/engine/snapshot.h"
#include "../fixture.h"
#include "../handed_over.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

namespace {

std::vector<uint8_t> save(Fixture& f, std::vector<int>& fds) {
  snap::Writer w;
  const size_t at = snap::begin_envelope(w, "engine-suite");
  f.bus.save(w, nullptr);
  snap::seal(w, at);
  fds = w.fds();
  return std::move(w.buffer());
}

// Throws snap::FormatError as Bus::load does.
void load(Fixture& g, const std::vector<uint8_t>& state, const std::vector<int>& fds) {
  std::string writer;
  snap::FdTable table(handed_over(fds));
  snap::Reader r = snap::open_envelope(state.data(), state.size(), &table, writer);
  uint32_t tag = 0;
  snap::Reader body(nullptr, 0);
  while (r.next_section(tag, body)) {
    if (tag == snap::tag("ENGN")) g.bus.load(body, nullptr);
  }
}

void round_trip(Fixture& f, Fixture& g) {
  std::vector<int> fds;
  const std::vector<uint8_t> state = save(f, fds);
  load(g, state, fds);
}

std::string refusal(Fixture& g, const std::vector<uint8_t>& state, const std::vector<int>& fds) {
  try {
    load(g, state, fds);
  } catch (const snap::FormatError& e) {
    return e.what();
  }
  return "";
}

// One delivery with what describe() leaves out: global order, view, size, fds.
std::string full(const Delivery& d) {
  const Message& m = *d.msg;
  std::string s = describe(d) + " seq=" + std::to_string(m.seqnum) + " " + std::string(m.view.path) + " " +
                  std::string(m.view.interface) + "." + std::string(m.view.member) + " bytes=" +
                  std::to_string(m.payload.size()) + " fds=" + std::to_string(m.fds ? m.fds->fds.size() : 0);
  for (const auto& a : m.view.args) s += " arg" + std::to_string(a.index) + "=" + std::string(a.value);
  return s;
}

V take_all(Fixture& f, ConnId id) {
  V out;
  Delivery d;
  while (f.bus.recv(id, 0, 0, d) == 0) out.push_back(full(d));
  return out;
}

V info(Fixture& f, ConnId id) {
  ConnInfo ci;
  const int err = f.bus.conn_info(id, "", ci);
  if (err != 0) return {errno_name(err)};
  V out{std::to_string(ci.flags), ci.description, std::to_string(ci.metadata->uid),
        std::to_string(ci.metadata->pid)};
  for (const auto& n : ci.names) out.push_back(n);
  return out;
}

constexpr uint64_t kAll = kListUnique | kListNames | kListActivators | kListQueued;

// The same commands on both buses give the same answers and deliveries.
void same_from_here(Fixture& f, Fixture& g, const std::vector<ConnId>& ids) {
  CHECK_EQ(g.listing(kAll), f.listing(kAll));
  for (ConnId id : ids) {
    CHECK_EQ(info(g, id), info(f, id));
    CHECK_EQ(take_all(g, id), take_all(f, id));
  }
  CHECK_EQ(g.bus.next_deadline(), f.bus.next_deadline());
  CHECK_EQ(g.bus.stats().match_rules, f.bus.stats().match_rules);
  CHECK_EQ(g.bus.stats().names, f.bus.stats().names);
}

}  // namespace

TEST(snapshot, "names, queues, activators, matches and queued messages come back as they were") {
  Fixture f, g;
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  ConnId act = f.activator("org.test.Act");
  REQUIRE_ERR(f.acquire(a, "org.test.N", kNameAllowReplacement), 0);
  CHECK_EQ(f.acquire_flags(b, "org.test.N", kNameQueue), uint64_t{kNameInQueue});
  REQUIRE_ERR(f.add_match(c, "type='signal',member='Sig'", 7), 0);
  REQUIRE_ERR(f.add_match(c, "type='signal',arg0='x'", 8), 0);
  REQUIRE_ERR(f.send(a, f.signal().cookie(1).arg(0, 's', "x").bytes(40)), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.Act").cookie(2).fds(2)), 0);
  REQUIRE_ERR(f.send(c, f.call(b).cookie(3).bytes(100).fds(1)), 0);
  round_trip(f, g);
  same_from_here(f, g, {a, b, c, act});
  // And they go on alike: hand-overs, new ids, the same global order.
  for (Fixture* x : {&f, &g}) {
    CHECK_EQ(x->hello(), c + 1);
    CHECK_ERR(x->bus.disconnect(a), 0);
    CHECK_ERR(x->send(c, x->signal().cookie(4)), 0);
    CHECK_ERR(x->acquire(c, "org.test.Act"), 0);
  }
  same_from_here(f, g, {a, b, c, act, c + 1});
}

TEST(snapshot, "reply waits keep their absolute deadlines") {
  Fixture f, g;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(5).timeout(5000)), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(6)), 0);
  round_trip(f, g);
  CHECK_EQ(g.bus.next_deadline(), uint64_t{5000});
  CHECK_EQ(g.bus.expire_replies(4999), 0);
  CHECK_EQ(g.bus.expire_replies(5000), 1);
  CHECK_EQ(f.bus.expire_replies(5000), 1);
  same_from_here(f, g, {a, b});
  // The wait without deadline still lets the reply through; the expired one does not.
  for (Fixture* x : {&f, &g}) {
    CHECK_ERR(x->send(b, x->reply(a, 6).cookie(1)), 0);
    CHECK_ERR(x->send(b, x->reply(a, 5).cookie(2)), EPERM);
  }
  same_from_here(f, g, {a, b});
}

TEST(snapshot, "monitors, filters, closing connections and attach flags come back") {
  Fixture f, g;
  ConnId a = f.hello(), b = f.hello();
  ConnId mon = f.monitor();
  REQUIRE_ERR(f.add_match(b, "type='method_call',eavesdrop=true", 3), 0);
  ConnId filtered = f.hello();
  REQUIRE_ERR(f.bus.become_monitor(filtered, {f.rule("member='Only'")}), 0);
  REQUIRE_ERR(f.bus.set_attach_flags(b, kAttachTimestamp | kAttachCreds), 0);
  ConnId bye = f.hello();
  REQUIRE_ERR(f.bus.byebye(bye), 0);
  REQUIRE_ERR(f.bus.update(a, "described"), 0);
  round_trip(f, g);
  same_from_here(f, g, {a, b, mon, filtered, bye});
  for (Fixture* x : {&f, &g}) {
    CHECK_ERR(x->send(a, x->call(bye).cookie(9)), ENXIO);
    CHECK_ERR(x->send(bye, x->call(a).cookie(10)), 0);
    CHECK_ERR(x->send(a, x->signal("Only").cookie(11)), 0);
    CHECK_ERR(x->send(a, Msg(*x, 1).to(b).cookie(12)), 0);
  }
  same_from_here(f, g, {a, b, mon, filtered, bye});
  CHECK_EQ(g.bus.has_monitors(), true);
}

TEST(snapshot, "queued fds are those handed over, the saved bus's own stay open") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, Msg(f, 1).to(b).cookie(1).fds(3)), 0);
  std::vector<int> fds;
  const std::vector<uint8_t> state = save(f, fds);
  CHECK_EQ(fds.size(), size_t{3});
  {
    Fixture g;
    load(g, state, fds);
    Delivery d;
    REQUIRE_ERR(g.bus.recv(b, 0, 0, d), 0);
    REQUIRE(d.msg->fds != nullptr);
    CHECK_EQ(d.msg->fds->fds.size(), size_t{3});
    for (size_t i = 0; i < 3; ++i) CHECK(d.msg->fds->fds[i].get() != fds[i]);
  }
  for (int fd : fds) CHECK(::fcntl(fd, F_GETFD) >= 0);
}

// A bus at its fd limit cannot hold two of each: restored objects take the
// fds that came with the state instead of duplicating them.
TEST(snapshot, "fds are taken over, not duplicated; one named twice is duplicated once; the rest are closed") {
  auto open_fd = [] { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); };
  const int a = open_fd(), b = open_fd(), unused = open_fd();
  std::vector<int> list = {a, b, a, unused};
  util::UniqueFd first, second, again;
  {
    snap::FdTable table(list);
    snap::Writer w;
    for (int i = 0; i < 3; ++i) w.u32(static_cast<uint32_t>(i));
    w.u32(snap::kNoFd);
    snap::Reader r(w.buffer().data(), w.buffer().size(), &table);
    first = r.take_fd();
    second = r.take_fd();
    again = r.take_fd();
    CHECK_EQ(first.get(), a);
    CHECK_EQ(second.get(), b);
    CHECK(again.valid());
    CHECK(again.get() != a);
    CHECK(!r.take_fd().valid());
  }
  CHECK(::fcntl(a, F_GETFD) >= 0);
  CHECK(::fcntl(b, F_GETFD) >= 0);
  CHECK_EQ(::fcntl(unused, F_GETFD), -1);
}

TEST(snapshot, "a snapshot that is not one, another version, cut short or altered is refused") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, Msg(f, 1).to(b).cookie(1).bytes(64)), 0);
  std::vector<int> fds;
  const std::vector<uint8_t> state = save(f, fds);
  {
    Fixture g;
    CHECK_EQ(refusal(g, state, fds), std::string());
  }
  auto variant = [&](auto change) {
    std::vector<uint8_t> s = state;
    change(s);
    Fixture g;
    return refusal(g, s, fds);
  };
  CHECK_EQ(variant([](std::vector<uint8_t>& s) { s[0] = 'X'; }), std::string("not a kdbus-bridge state snapshot (bad magic)"));
  CHECK_EQ(variant([](std::vector<uint8_t>& s) { s[8] = 9; }),
           std::string("snapshot format version 9, this build reads version 1"));
  CHECK(variant([](std::vector<uint8_t>& s) { s.resize(s.size() - 5); }).find("length mismatch") != std::string::npos);
  CHECK_EQ(variant([](std::vector<uint8_t>& s) { s[s.size() - 30] ^= 1; }),
           std::string("snapshot corrupt: checksum mismatch"));
  CHECK(variant([](std::vector<uint8_t>& s) { s.resize(6); }).find("bad magic") != std::string::npos);
  // A well-formed envelope around a section that lies about its contents.
  snap::Writer w;
  const size_t at = snap::begin_envelope(w, "engine-suite");
  const size_t sec = w.begin_section(snap::tag("ENGN"));
  w.u64(1);
  w.end_section(sec);
  snap::seal(w, at);
  Fixture g;
  CHECK_EQ(refusal(g, w.buffer(), fds), std::string("snapshot: truncated"));
}

TEST(snapshot, "the writer keeps up with 1000 connections and 10000 rules") {
  Fixture f, g;
  std::vector<ConnId> ids;
  for (int i = 0; i < 1000; ++i) ids.push_back(f.hello());
  for (int i = 0; i < 10000; ++i) {
    const std::string text = "type='signal',interface='org.test.I" + std::to_string(i % 97) + "',member='M" + std::to_string(i) + "'";
    REQUIRE_ERR(f.add_match(ids[i % ids.size()], text, static_cast<uint64_t>(i + 1)), 0);
  }
  for (int i = 0; i < 1000; ++i) REQUIRE_ERR(f.send(ids[i], Msg(f, 1).to(ids[(i + 1) % 1000]).cookie(1).bytes(200)), 0);
  struct timespec t0 {}, t1 {}, t2 {};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  std::vector<int> fds;
  const std::vector<uint8_t> state = save(f, fds);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  load(g, state, fds);
  clock_gettime(CLOCK_MONOTONIC, &t2);
  auto ms = [](const timespec& a, const timespec& b) {
    return static_cast<double>(b.tv_sec - a.tv_sec) * 1e3 + static_cast<double>(b.tv_nsec - a.tv_nsec) / 1e6;
  };
  std::printf("    (engine snapshot: %zu bytes, save %.1f ms, load %.1f ms)\n", state.size(), ms(t0, t1), ms(t1, t2));
  CHECK_EQ(g.bus.stats().match_rules, uint64_t{10000});
  same_from_here(f, g, {ids[0], ids[1], ids[999]});
}

namespace {

// The server's side of a snapshot, reduced to one account per sender.
struct Accounts : SnapshotHooks {
  std::map<uint64_t, std::shared_ptr<Account>> by_key;
  int owner_tag = 0;
  uint64_t account_key(const Account* a) override {
    for (const auto& [k, acc] : by_key) {
      if (acc.get() == a) return k;
    }
    return 0;
  }
  Charge charge(uint64_t key, size_t bytes, size_t fds) override {
    auto& a = by_key[key];
    if (!a) a = std::make_shared<Account>();
    return Charge(a, nullptr, bytes, fds);
  }
  void* owner(ConnId, uint64_t) override { return &owner_tag; }
};

}  // namespace

TEST(snapshot, "charges go back to the sender's account; queues report ready to their new owners") {
  Fixture f, g;
  ConnId a = f.hello(), b = f.hello();
  Accounts saved;
  saved.by_key[a] = std::make_shared<Account>();
  auto m = Msg(f, 1).to(b).cookie(1).bytes(300).fds(2).build();
  m->charge = Charge(saved.by_key[a], nullptr, m->payload.size(), 2);
  REQUIRE_ERR(f.bus.send(a, m), 0);
  m.reset();
  snap::Writer w;
  const size_t at = snap::begin_envelope(w, "engine-suite");
  f.bus.save(w, &saved);
  snap::seal(w, at);
  Accounts loaded;
  std::string writer;
  snap::FdTable fds(handed_over(w.fds()));
  snap::Reader r = snap::open_envelope(w.buffer().data(), w.buffer().size(), &fds, writer);
  CHECK_EQ(writer, std::string("engine-suite"));
  uint32_t tag = 0;
  snap::Reader body(nullptr, 0);
  REQUIRE(r.next_section(tag, body));
  g.rec.ready.clear();
  g.rec.owners.clear();
  g.bus.load(body, &loaded);
  CHECK_EQ(g.rec.ready, std::vector<ConnId>{b});
  CHECK(!g.rec.owners.empty() && g.rec.owners[0] == &loaded.owner_tag);
  REQUIRE(loaded.by_key.count(a) == 1);
  CHECK_EQ(loaded.by_key[a]->bytes(), size_t{300});
  CHECK_EQ(loaded.by_key[a]->fds(), size_t{2});
  CHECK_EQ(take_all(g, b).size(), size_t{1});
  CHECK_EQ(loaded.by_key[a]->bytes(), size_t{0});
}
