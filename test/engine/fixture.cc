#include "fixture.h"

#include <unistd.h>

#include <utility>

namespace enginetest {

using namespace kdbus;

Msg::Msg(Fixture& f, uint8_t type) : f_(f), m_(std::make_shared<Message>()) {
  m_->view.type = type;
  if (type == 4) m_->flags |= kMsgSignal;
}
std::string_view Msg::keep(std::string_view s) { return f_.keep(s); }
Msg& Msg::to(ConnId id) {
  m_->dst_id = id;
  m_->view.destination = keep(unique_name(id));
  return *this;
}
Msg& Msg::to(std::string name) {
  m_->dst_id = kDstName;
  m_->view.destination = keep(name);
  m_->dst_name = std::move(name);
  return *this;
}
Msg& Msg::broadcast() {
  m_->dst_id = kDstBroadcast;
  return *this;
}
Msg& Msg::cookie(uint64_t c) {
  m_->cookie = c;
  return *this;
}
Msg& Msg::reply_to(uint64_t c) {
  m_->cookie_reply = c;
  return *this;
}
Msg& Msg::flags(uint64_t f) {
  m_->flags = f;
  return *this;
}
Msg& Msg::expect_reply() {
  m_->flags |= kMsgExpectReply;
  return *this;
}
Msg& Msg::no_auto_start() {
  m_->flags |= kMsgNoAutoStart;
  return *this;
}
Msg& Msg::priority(int64_t p) {
  m_->priority = p;
  return *this;
}
Msg& Msg::timeout(uint64_t ns) {
  m_->timeout_ns = ns;
  return *this;
}
Msg& Msg::member(std::string_view s) {
  m_->view.member = keep(s);
  return *this;
}
Msg& Msg::iface(std::string_view s) {
  m_->view.interface = keep(s);
  return *this;
}
Msg& Msg::path(std::string_view s) {
  m_->view.path = keep(s);
  return *this;
}
Msg& Msg::error_name(std::string_view s) {
  m_->view.error_name = keep(s);
  return *this;
}
Msg& Msg::arg(uint8_t index, char type, std::string_view value) {
  m_->view.args.push_back({index, type, keep(value)});
  return *this;
}
Msg& Msg::bytes(size_t n) {
  m_->payload.head.assign(n, 0x5a);
  return *this;
}
Msg& Msg::fds(size_t n) {
  m_->fds = std::make_shared<FdSet>();
  for (size_t i = 0; i < n; ++i) m_->fds->fds.emplace_back(::dup(0));
  return *this;
}

int Fixture::hello_with(uint64_t flags, const std::string& activator_name, ConnId& out) {
  HelloParams p;
  p.flags = flags;
  p.activator_name = activator_name;
  return bus.hello(std::move(p), out);
}

ConnId Fixture::hello(uint64_t flags) {
  ConnId id = 0;
  CHECK_ERR(hello_with(flags, "", id), 0);
  return id;
}

ConnId Fixture::hello_uid(uid_t uid, uint64_t flags) {
  HelloParams p;
  p.flags = flags;
  p.metadata.has_creds = true;
  p.metadata.uid = uid;
  p.metadata.gid = uid;
  p.metadata.command = "test";  // keeps HELLO from reading a pid's command line
  ConnId id = 0;
  CHECK_ERR(bus.hello(std::move(p), id), 0);
  return id;
}

ConnId Fixture::activator(const std::string& name) {
  ConnId id = 0;
  CHECK_ERR(hello_with(kHelloActivator | kHelloAcceptFd, name, id), 0);
  return id;
}

ConnId Fixture::monitor() {
  ConnId id = 0;
  CHECK_ERR(hello_with(kHelloMonitor | kHelloAcceptFd, "", id), 0);
  return id;
}

MatchRule Fixture::rule(std::string_view text) {
  MatchRule r;
  std::string err;
  if (!MatchRule::parse(text, r, err)) fail(__FILE__, __LINE__, "rule does not parse: " + std::string(text) + ": " + err);
  return r;
}

int Fixture::add_match(ConnId id, std::string_view text, uint64_t cookie) { return bus.match_add(id, cookie, rule(text)); }

int Fixture::acquire(ConnId id, std::string_view name, uint64_t flags) {
  uint64_t rf = 0;
  return bus.name_acquire(id, name, flags, rf);
}

uint64_t Fixture::acquire_flags(ConnId id, std::string_view name, uint64_t flags) {
  uint64_t rf = 0;
  int err = bus.name_acquire(id, name, flags, rf);
  return err == 0 || err == EALREADY ? rf : ~uint64_t{0};
}

std::vector<std::string> Fixture::drain(ConnId id) {
  std::vector<std::string> out;
  Delivery d;
  while (bus.recv(id, 0, 0, d) == 0) out.push_back(describe(d));
  return out;
}

std::vector<std::string> Fixture::listing(uint64_t flags) {
  std::vector<NameOwnerInfo> v;
  bus.list(flags, v);
  std::vector<std::string> out;
  for (const NameOwnerInfo& i : v) out.push_back(i.name + " " + unique_name(i.id) + " " + std::to_string(i.flags));
  return out;
}

}  // namespace enginetest
