#pragma once
// What the cases drive: one bus and the helpers that build messages and
// read queues back as text. The cases reach the engine only through the
// command set here and in bus.h, so another implementation of that command
// set could stand behind this fixture and run the same cases.
#include <cerrno>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../../kdbus-native/engine/bus.h"
#include "check.h"
#include "describe.h"

namespace enginetest {

using kdbus::ConnId;
using kdbus::Message;

struct Recorder : kdbus::QueueListener {
  std::vector<ConnId> ready, overflow;
  std::vector<void*> owners;
  void queue_ready(ConnId id, void* owner) override {
    ready.push_back(id);
    owners.push_back(owner);
  }
  void queue_overflow(ConnId id, void*) override { overflow.push_back(id); }
};

class Fixture;

// Builds one message; the strings its view points at live in the fixture.
class Msg {
 public:
  Msg(Fixture& f, uint8_t type);
  Msg& to(ConnId id);
  Msg& to(std::string name);
  Msg& broadcast();
  Msg& cookie(uint64_t c);
  Msg& reply_to(uint64_t c);
  Msg& flags(uint64_t f);
  Msg& expect_reply();
  Msg& no_auto_start();
  Msg& priority(int64_t p);
  Msg& timeout(uint64_t ns);
  Msg& member(std::string_view m);
  Msg& iface(std::string_view i);
  Msg& path(std::string_view p);
  Msg& error_name(std::string_view e);
  Msg& arg(uint8_t index, char type, std::string_view value);
  Msg& bytes(size_t n);
  Msg& fds(size_t n);
  std::shared_ptr<Message> build() { return m_; }
  operator std::shared_ptr<Message>() { return m_; }

 private:
  std::string_view keep(std::string_view s);
  Fixture& f_;
  std::shared_ptr<Message> m_;
};

class Fixture {
 public:
  // The strings message views point at: they outlive the bus.
  std::deque<std::string> arena;
  Recorder rec;
  kdbus::Bus bus{&rec};

  // An ordinary connection (fails the case if HELLO fails).
  ConnId hello(uint64_t flags = kdbus::kHelloAcceptFd);
  ConnId hello_uid(uid_t uid, uint64_t flags = kdbus::kHelloAcceptFd);
  ConnId activator(const std::string& name);
  ConnId monitor();
  int hello_with(uint64_t flags, const std::string& activator_name, ConnId& out);

  Msg call(ConnId dst) { return std::move(Msg(*this, 1).to(dst).expect_reply()); }
  Msg call(const std::string& dst) { return std::move(Msg(*this, 1).to(dst).expect_reply()); }
  Msg reply(ConnId dst, uint64_t to_cookie) { return std::move(Msg(*this, 2).to(dst).reply_to(to_cookie)); }
  Msg signal(std::string_view member = "Sig") {
    return std::move(Msg(*this, 4).broadcast().path("/t").iface("org.test.I").member(member));
  }
  Msg unicast_signal(ConnId dst) { return std::move(Msg(*this, 4).to(dst).path("/t").iface("org.test.I").member("Sig")); }

  int send(ConnId from, Msg& m) { return bus.send(from, m.build()); }
  int send(ConnId from, Msg&& m) { return bus.send(from, m.build()); }

  // A match rule from dbus-daemon's text (fails the case when it does not parse).
  kdbus::MatchRule rule(std::string_view text);
  int add_match(ConnId id, std::string_view text, uint64_t cookie = 1);

  int acquire(ConnId id, std::string_view name, uint64_t flags = 0);
  uint64_t acquire_flags(ConnId id, std::string_view name, uint64_t flags = 0);

  // Takes everything queued for `id`, described one entry a line.
  std::vector<std::string> drain(ConnId id);
  // The owners of every listed entry, as "name id flags".
  std::vector<std::string> listing(uint64_t flags);

  std::string_view keep(std::string_view s) { return arena.emplace_back(s); }
};

}  // namespace enginetest
