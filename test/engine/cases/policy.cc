// Security policy decisions as the command set applies them.
#include <unistd.h>

#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

using V = std::vector<std::string>;

namespace {

PolicyRule allow(RuleKind kind) {
  PolicyRule r;
  r.allow = true;
  r.kind = kind;
  return r;
}
PolicyRule deny(RuleKind kind) {
  PolicyRule r = allow(kind);
  r.allow = false;
  return r;
}
PolicyRule with_name(PolicyRule r, std::string name, bool prefix = false) {
  r.name = std::move(name);
  r.name_is_prefix = prefix;
  return r;
}
PolicyRule with_member(PolicyRule r, std::string m) {
  r.member = std::move(m);
  return r;
}

// dbus-daemon's session-bus default: everything allowed.
std::shared_ptr<PolicyConfig> open_policy() {
  auto p = std::make_shared<PolicyConfig>();
  p->default_rules = {allow(RuleKind::Send), allow(RuleKind::Receive), allow(RuleKind::Own)};
  PolicyRule replies = allow(RuleKind::Send);
  replies.requested_reply = true;
  p->default_rules.push_back(replies);
  return p;
}

}  // namespace

TEST(policy, "without a policy everything is allowed") {
  Fixture f;
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), 0);
  PolicyMessage pm;
  pm.type = 1;
  CHECK_ERR(f.bus.check_send_to_bus(a, pm), 0);
  CHECK_ERR(f.bus.check_send_to_bus(99, pm), ENXIO);
}

TEST(policy, "own rules: EACCES for a name the policy keeps") {
  Fixture f;
  auto p = open_policy();
  p->default_rules.push_back(with_name(deny(RuleKind::Own), "org.test.Secret"));
  p->default_rules.push_back(with_name(deny(RuleKind::OwnPrefix), "org.kept"));
  f.bus.set_policy(p);
  ConnId a = f.hello();
  CHECK_ERR(f.acquire(a, "org.test.Secret"), EACCES);
  CHECK_ERR(f.acquire(a, "org.kept"), EACCES);
  CHECK_ERR(f.acquire(a, "org.kept.Sub"), EACCES);
  CHECK_ERR(f.acquire(a, "org.keptnot"), 0);
  CHECK_ERR(f.acquire(a, "org.test.Open"), 0);
}

TEST(policy, "a policy with no own rule denies owning") {
  Fixture f;
  auto p = std::make_shared<PolicyConfig>();
  p->default_rules = {allow(RuleKind::Send), allow(RuleKind::Receive)};
  f.bus.set_policy(p);
  ConnId a = f.hello();
  CHECK_ERR(f.acquire(a, "org.test.A"), EACCES);
}

TEST(policy, "installing a policy applies to connections already there") {
  Fixture f;
  ConnId a = f.hello();
  auto p = open_policy();
  p->default_rules.push_back(deny(RuleKind::Own));
  f.bus.set_policy(p);
  CHECK_ERR(f.acquire(a, "org.test.A"), EACCES);
  f.bus.set_policy(nullptr);
  CHECK_ERR(f.acquire(a, "org.test.A"), 0);
}

TEST(policy, "send rules: EACCES, with the denial recorded") {
  Fixture f;
  auto p = open_policy();
  p->default_rules.push_back(with_member(deny(RuleKind::Send), "Forbidden"));
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1).member("Forbidden")), EACCES);
  CHECK(!f.bus.last_denial().receive);
  CHECK_EQ(f.bus.last_denial().recipient, b);
  // The session default's second send rule names nothing, so dbus-daemon
  // drops the one before it: two rules matched.
  CHECK_EQ(f.bus.last_denial().matched_rules, 2);
  CHECK_ERR(f.send(a, f.call(b).cookie(2).member("Fine")), 0);
  CHECK_EQ(f.drain(b), V{"call :1.0 c=2 Fine [A]"});
}

TEST(policy, "receive rules: EACCES for the sender, marked as a receive denial") {
  Fixture f;
  auto p = open_policy();
  p->default_rules.push_back(with_member(deny(RuleKind::Receive), "Unwanted"));
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1).member("Unwanted")), EACCES);
  CHECK(f.bus.last_denial().receive);
  PolicyMessage pm;
  pm.type = 1;
  pm.member = "Unwanted";
  pm.interface = "org.test.I";
  pm.destination = ":1.1";
  const std::string text = f.bus.denial_text(a, pm);
  CHECK(text.rfind("Rejected receive message, 2 matched rules; type=\"method_call\", sender=\":1.0\"", 0) == 0);
  CHECK(text.find("member=\"Unwanted\"") != std::string::npos);
  CHECK(text.find("error name=\"(unset)\" requested_reply=\"0\" destination=\":1.1\"") != std::string::npos);
}

TEST(policy, "send_destination names the receiver by the names it holds") {
  Fixture f;
  auto p = open_policy();
  p->default_rules.push_back(with_name(deny(RuleKind::Send), "org.test.Guarded"));
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.Guarded"), 0);
  // By id too: what counts is that b owns the name now.
  CHECK_ERR(f.send(a, f.call(b).cookie(2)), EACCES);
  CHECK_ERR(f.send(a, f.call("org.test.Guarded").cookie(3)), EACCES);
}

TEST(policy, "send_destination_prefix covers names below it") {
  Fixture f;
  auto p = open_policy();
  p->default_rules.push_back(with_name(deny(RuleKind::Send), "org.guard", true));
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello(), c = f.hello();
  REQUIRE_ERR(f.acquire(b, "org.guard.Sub"), 0);
  REQUIRE_ERR(f.acquire(c, "org.guardian"), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), EACCES);
  CHECK_ERR(f.send(a, f.call(c).cookie(2)), 0);
}

TEST(policy, "receive_sender names the sender by the names it holds") {
  Fixture f;
  auto p = open_policy();
  p->default_rules.push_back(with_name(deny(RuleKind::Receive), "org.test.Noisy"));
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.acquire(a, "org.test.Noisy"), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1)), EACCES);
  CHECK_ERR(f.send(b, f.call(a).cookie(1)), 0);
}

TEST(policy, "unrequested replies: refused by default rules, allowed when a rule says so") {
  Fixture f;
  auto p = open_policy();
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello();
  CHECK_ERR(f.send(b, f.reply(a, 77).cookie(1)), EACCES);
  auto q = open_policy();
  PolicyRule any_reply = allow(RuleKind::Send);
  any_reply.requested_reply = false;
  any_reply.message_type = 2;
  q->default_rules.push_back(any_reply);
  PolicyRule recv_any = allow(RuleKind::Receive);
  recv_any.message_type = 2;
  q->default_rules.push_back(recv_any);
  f.bus.set_policy(q);
  CHECK_ERR(f.send(b, f.reply(a, 77).cookie(2)), 0);
  CHECK_EQ(f.drain(a), V{"return :1.1 c=2 r=77 [A]"});
}

TEST(policy, "requested replies pass a policy that denies sending calls") {
  Fixture f;
  auto p = open_policy();
  PolicyRule no_calls = deny(RuleKind::Send);
  no_calls.message_type = 1;
  p->default_rules.push_back(no_calls);
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  f.bus.set_policy(p);
  CHECK_ERR(f.send(b, f.reply(a, 1).cookie(1)), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(2)), EACCES);
}

TEST(policy, "broadcast receivers the policy refuses are left out; monitors see Denied") {
  Fixture f;
  auto p = open_policy();
  p->user_rules[4242] = {with_member(deny(RuleKind::Receive), "Sig")};
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello_uid(4242), c = f.hello();
  REQUIRE_ERR(f.add_match(b, "type='signal'"), 0);
  REQUIRE_ERR(f.add_match(c, "type='signal'"), 0);
  ConnId m = f.monitor();
  f.drain(c);
  CHECK_ERR(f.send(a, f.signal("Sig").cookie(5)), 0);
  CHECK_EQ(f.drain(b), V{});
  CHECK_EQ(f.drain(c), V{"signal :1.0 c=5 Sig [M]"});
  CHECK_EQ(f.drain(m), (V{"signal :1.0 c=5 Sig [E]", "Denied r=5 :1.0 [E]"}));
  CHECK_EQ(f.drain(a), V{});
}

TEST(policy, "group rules apply through the connection's groups") {
  Fixture f;
  auto p = open_policy();
  p->group_rules[777] = {deny(RuleKind::Own)};
  f.bus.set_policy(p);
  HelloParams hp;
  hp.metadata.has_creds = true;
  hp.metadata.uid = 1000;
  hp.metadata.gid = 1000;
  hp.metadata.has_groups = true;
  hp.metadata.groups = {777, 1000};
  hp.metadata.command = "x";
  ConnId g = 0;
  REQUIRE_ERR(f.bus.hello(std::move(hp), g), 0);
  ConnId other = f.hello_uid(1000);
  CHECK_ERR(f.acquire(g, "org.test.A"), EACCES);
  CHECK_ERR(f.acquire(other, "org.test.A"), 0);
}

TEST(policy, "mandatory rules come last and win") {
  Fixture f;
  auto p = open_policy();
  p->user_rules[1000] = {allow(RuleKind::Own)};
  p->mandatory_rules = {with_name(deny(RuleKind::Own), "org.test.Never")};
  f.bus.set_policy(p);
  ConnId a = f.hello_uid(1000);
  CHECK_ERR(f.acquire(a, "org.test.Never"), EACCES);
  CHECK_ERR(f.acquire(a, "org.test.Other"), 0);
}

TEST(policy, "at_console rules: without logind's seat a user is not at the console") {
  Fixture f;
  auto p = open_policy();
  p->console_rules = {allow(RuleKind::Own)};
  p->no_console_rules = {with_name(deny(RuleKind::Own), "org.test.Console")};
  f.bus.set_policy(p);
  // A uid that has no logind record on any machine.
  ConnId a = f.hello_uid(3999999);
  CHECK_ERR(f.acquire(a, "org.test.Console"), EACCES);
}

TEST(policy, "eavesdropping needs an allow rule that says so") {
  Fixture f;
  auto p = open_policy();
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello(), e = f.hello();
  REQUIRE_ERR(f.add_match(e, "eavesdrop=true"), 0);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(1)), 0);
  CHECK_EQ(f.drain(e), V{});
  auto q = open_policy();
  PolicyRule eav = allow(RuleKind::Receive);
  eav.eavesdrop = true;
  q->default_rules.push_back(eav);
  f.bus.set_policy(q);
  REQUIRE_ERR(f.send(a, f.call(b).cookie(2)), 0);
  CHECK_EQ(f.drain(e), V{"call :1.0 c=2 [E]"});
}

TEST(policy, "the new owner's policy is asked again for calls held by an activator") {
  Fixture f;
  auto p = open_policy();
  p->user_rules[5555] = {with_member(deny(RuleKind::Receive), "Refused")};
  f.bus.set_policy(p);
  f.activator("org.test.S");
  ConnId a = f.hello();
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(1).member("Refused")), 0);
  REQUIRE_ERR(f.send(a, f.call("org.test.S").cookie(2).member("Fine")), 0);
  ConnId s = f.hello_uid(5555);
  REQUIRE_ERR(f.acquire(s, "org.test.S"), 0);
  CHECK_EQ(f.drain(s), (V{"NameAdd org.test.S :1.1 [N]", "call :1.0 c=2 Fine [A]"}));
  CHECK_EQ(f.drain(a), V{"Denied r=1 :1.0 [A]"});
  // The refused call's wait is gone, the other one moved to s.
  CHECK_ERR(f.send(s, f.reply(a, 1).cookie(1)), EACCES);
  CHECK_ERR(f.send(s, f.reply(a, 2).cookie(2)), 0);
}

TEST(policy, "a new owner whose policy refuses NameAcquired does not get it") {
  Fixture f;
  auto p = open_policy();
  p->user_rules[6000] = {with_member(deny(RuleKind::Receive), "NameAcquired")};
  f.bus.set_policy(p);
  ConnId a = f.hello_uid(6000);
  REQUIRE_ERR(f.acquire(a, "org.test.A"), 0);
  CHECK_EQ(f.drain(a), V{});
}

TEST(policy, "matched bus signals obey the receiver's rules") {
  Fixture f;
  auto p = open_policy();
  p->user_rules[6001] = {with_member(deny(RuleKind::Receive), "NameOwnerChanged")};
  f.bus.set_policy(p);
  ConnId a = f.hello_uid(6001), b = f.hello();
  REQUIRE_ERR(f.add_match(a, "type='signal'"), 0);
  REQUIRE_ERR(f.acquire(b, "org.test.B"), 0);
  CHECK_EQ(f.drain(a), V{});
}

TEST(policy, "check_send_to_bus applies the sender's send rules") {
  Fixture f;
  auto p = open_policy();
  PolicyRule r = with_member(deny(RuleKind::Send), "UpdateActivationEnvironment");
  r.interface = "org.freedesktop.DBus";
  p->default_rules.push_back(r);
  f.bus.set_policy(p);
  ConnId a = f.hello();
  PolicyMessage pm;
  pm.type = 1;
  pm.interface = "org.freedesktop.DBus";
  pm.member = "UpdateActivationEnvironment";
  CHECK_ERR(f.bus.check_send_to_bus(a, pm), EACCES);
  CHECK_EQ(f.bus.last_denial().recipient, kIdBus);
  const std::string text = f.bus.denial_text(a, pm);
  CHECK(text.find("destination=\"org.freedesktop.DBus\" (bus)") != std::string::npos);
  pm.member = "ListNames";
  CHECK_ERR(f.bus.check_send_to_bus(a, pm), 0);
}

TEST(policy, "rule fields: interface, path, error, type, broadcast, fds") {
  Fixture f;
  auto p = open_policy();
  PolicyRule path = deny(RuleKind::Send);
  path.path = "/secret";
  PolicyRule iface = deny(RuleKind::Send);
  iface.interface = "org.test.Closed";
  PolicyRule err = deny(RuleKind::Send);
  err.error = "org.test.Err";
  err.message_type = 3;
  err.requested_reply = true;  // else a deny rule concerns unrequested replies only
  PolicyRule bcast = deny(RuleKind::Send);
  bcast.broadcast = Tristate::True;
  bcast.member = "Loud";
  // Named by interface: a rule naming nothing else would, as in
  // dbus-daemon, drop every send rule before it, fds limits or not.
  PolicyRule fds = deny(RuleKind::Send);
  fds.interface = "org.test.Open";
  fds.min_fds = 2;
  p->default_rules.insert(p->default_rules.end(), {path, iface, err, bcast, fds});
  f.bus.set_policy(p);
  ConnId a = f.hello(), b = f.hello();
  REQUIRE_ERR(f.add_match(b, "type='signal'"), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(1).path("/secret")), EACCES);
  CHECK_ERR(f.send(a, f.call(b).cookie(2).path("/open").iface("org.test.Open")), 0);
  CHECK_ERR(f.send(a, f.call(b).cookie(3).iface("org.test.Closed")), EACCES);
  // A deny rule naming an interface catches messages without one too.
  CHECK_ERR(f.send(a, f.call(b).cookie(4)), EACCES);
  // A deny rule naming a path catches messages without one too.
  CHECK_ERR(f.send(a, f.call(b).cookie(5).iface("org.test.Open")), EACCES);
  CHECK_ERR(f.send(a, f.call(b).cookie(6).path("/o").iface("org.test.Open").fds(2)), EACCES);
  CHECK_ERR(f.send(a, f.call(b).cookie(7).path("/o").iface("org.test.Open").fds(1)), 0);
  CHECK_ERR(f.send(a, f.unicast_signal(b).cookie(8).member("Loud")), 0);
  f.drain(b);
  CHECK_ERR(f.send(a, f.signal("Loud").cookie(9)), 0);
  CHECK_EQ(f.drain(b), V{});  // left out, sender not told
  REQUIRE_ERR(f.send(b, f.call(a).cookie(10).path("/o").iface("org.test.Open")), 0);
  CHECK_ERR(f.send(a, Msg(f, 3).to(b).reply_to(10).cookie(11).path("/o").iface("org.test.Open").error_name("org.test.Err")), EACCES);
  CHECK_ERR(f.send(a, Msg(f, 3).to(b).reply_to(10).cookie(12).path("/o").iface("org.test.Open").error_name("org.test.Other")), 0);
}

TEST(policy, "can_connect: the bus's own user and root without a policy; user and group rules with one") {
  Fixture f;
  Metadata md;
  CHECK(f.bus.can_connect(md));  // no credentials: not checked here
  md.has_creds = true;
  md.uid = geteuid();
  CHECK(f.bus.can_connect(md));
  md.uid = 0;
  CHECK(f.bus.can_connect(md));
  md.uid = geteuid() + 12345;
  md.gid = 900;
  CHECK_EQ(f.bus.can_connect(md), geteuid() + 12345 == 0);
  auto p = open_policy();
  PolicyRule u = allow(RuleKind::User);
  u.id = geteuid() + 12345;
  p->default_rules.push_back(u);
  f.bus.set_policy(p);
  CHECK(f.bus.can_connect(md));
  PolicyRule g = deny(RuleKind::Group);
  g.id = 900;
  p->mandatory_rules.push_back(g);
  f.bus.set_policy(p);
  CHECK(!f.bus.can_connect(md));
  md.has_groups = true;
  md.groups = {901};
  CHECK(f.bus.can_connect(md));
  PolicyRule everyone = allow(RuleKind::Group);
  p->mandatory_rules.push_back(everyone);
  f.bus.set_policy(p);
  md.uid = geteuid() + 999;
  CHECK(f.bus.can_connect(md));
}

TEST(policy, "name_has_prefix works on whole components") {
  CHECK(name_has_prefix("org.a", "org.a"));
  CHECK(name_has_prefix("org.a.b", "org.a"));
  CHECK(!name_has_prefix("org.ab", "org.a"));
  CHECK(!name_has_prefix("org", "org.a"));
}

TEST(policy, "loginfo describes what is known of a connection") {
  Metadata md;
  CHECK_EQ(loginfo(md), std::string());
  md.has_creds = true;
  md.uid = 1000;
  CHECK_EQ(loginfo(md), std::string("uid=1000"));
  md.pid = 42;
  md.command = "prog --x";
  CHECK_EQ(loginfo(md), std::string("uid=1000 pid=42 comm=\"prog --x\""));
  md.has_seclabel = true;
  md.seclabel = "unconfined";
  CHECK_EQ(loginfo(md), std::string("uid=1000 pid=42 comm=\"prog --x\" label=\"unconfined\""));
  Metadata label_only;
  label_only.has_seclabel = true;
  label_only.seclabel = "l";
  CHECK_EQ(loginfo(label_only), std::string("label=\"l\""));
}
