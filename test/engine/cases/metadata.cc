// Metadata captured from the kernel at HELLO (kdbus attaches the same).
#include <sys/socket.h>
#include <unistd.h>

#include "../../../kdbus-native/engine/metadata.h"
#include "../fixture.h"

using namespace kdbus;
using namespace enginetest;

namespace {
struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() { ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd); }
  ~SocketPair() {
    for (int f : fd) if (f >= 0) ::close(f);
  }
};
}  // namespace

TEST(metadata, "the peer's credentials come from the socket") {
  SocketPair sp;
  REQUIRE(sp.fd[0] >= 0);
  Metadata md = capture_peer_metadata(sp.fd[0]);
  CHECK(md.has_creds);
  CHECK_EQ(md.pid, getpid());
  CHECK_EQ(md.uid, geteuid());
  CHECK_EQ(md.gid, getegid());
  if (md.has_groups) {
    CHECK(std::find(md.groups.begin(), md.groups.end(), getegid()) != md.groups.end());
    CHECK(std::is_sorted(md.groups.begin(), md.groups.end()));
  }
}

TEST(metadata, "a socket that is not connected yields nothing") {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  Metadata md = capture_peer_metadata(fd);
  CHECK(!md.has_seclabel || md.seclabel.empty());
  CHECK(capture_pidfd(fd) == nullptr);
  ::close(fd);
  Metadata none = capture_peer_metadata(-1);
  CHECK(!none.has_creds);
  CHECK(!none.has_groups);
}

TEST(metadata, "the pidfd, where the kernel has one, is an fd") {
  SocketPair sp;
  REQUIRE(sp.fd[0] >= 0);
  auto pidfd = capture_pidfd(sp.fd[0]);
  if (pidfd) CHECK(pidfd->valid());
}

TEST(metadata, "the command line as logs show it") {
  const std::string mine = capture_command(getpid());
  CHECK(!mine.empty());
  CHECK(mine.size() <= 50);
  CHECK(mine.find('\0') == std::string::npos);
  CHECK_EQ(capture_command(-1), std::string());
}

TEST(metadata, "HELLO keeps the metadata and reads the command of its pid") {
  Fixture f;
  HelloParams p;
  p.metadata.has_creds = true;
  p.metadata.pid = getpid();
  p.metadata.uid = 1234;
  ConnId a = 0;
  REQUIRE_ERR(f.bus.hello(std::move(p), a), 0);
  ConnInfo info;
  REQUIRE_ERR(f.bus.conn_info(a, "", info), 0);
  REQUIRE(info.metadata != nullptr);
  CHECK_EQ(info.metadata->uid, 1234u);
  CHECK_EQ(info.metadata->command, capture_command(getpid()));
}

TEST(metadata, "the bus's creator is this process") {
  Fixture f;
  const Metadata& c = f.bus.creator();
  CHECK(c.has_creds);
  CHECK_EQ(c.pid, getpid());
  CHECK_EQ(c.uid, geteuid());
  CHECK(c.has_groups);
  CHECK(std::find(c.groups.begin(), c.groups.end(), getegid()) != c.groups.end());
}
