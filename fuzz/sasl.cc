// libFuzzer harness: the server side of SASL fed a client's bytes, once in
// one piece and once cut at random places. Both must end in the same state
// having consumed the same bytes (what follows BEGIN belongs to the message
// stream), and without the random cookie challenge, with the same replies.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../kdbus-native/wire/sasl.h"

namespace {

std::string cookie_home;

struct Outcome {
  wire::SaslServer::State state;
  size_t consumed;
  std::string replies;
};

// Feeds data in chunks whose sizes come from `cuts` (0 = one piece).
Outcome run(const wire::SaslConfig& config, const uint8_t* data, size_t size, uint32_t cuts) {
  wire::SaslServer server(config, getuid());
  Outcome o{wire::SaslServer::State::InProgress, 0, {}};
  size_t at = 0;
  while (at < size && server.state() == wire::SaslServer::State::InProgress) {
    size_t n = size - at;
    if (cuts != 0) {
      cuts = cuts * 1103515245u + 12345u;
      n = std::min<size_t>(n, 1 + (cuts >> 16) % 64);
    }
    const size_t used = server.feed(data + at, n, o.replies);
    if (used > n) {
      std::fprintf(stderr, "feed consumed more than it was given\n");
      std::abort();
    }
    if (server.state() != wire::SaslServer::State::Done && used != n) {
      std::fprintf(stderr, "feed left bytes unconsumed before BEGIN\n");
      std::abort();
    }
    o.consumed += used;
    at += n;
  }
  o.state = server.state();
  // Replies are lines; none grows with the input beyond the line it answers.
  if (o.replies.size() > 64 * (size + 1)) {
    std::fprintf(stderr, "replies out of proportion to the input\n");
    std::abort();
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/kdbus-bridge-fuzz-sasl.XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  cookie_home = dir;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t knobs = data[0];
  data += 1;
  size -= 1;

  wire::SaslConfig config;
  config.guid_hex = "0123456789abcdef0123456789abcdef";
  config.allow_anonymous = knobs & 1;
  config.unix_fd_capable = knobs & 2;
  config.authorize_after = knobs & 4;
  config.cookie_home = cookie_home;
  const bool with_cookie = knobs & 8;
  config.mechanisms = {"EXTERNAL", "ANONYMOUS"};
  if (with_cookie) config.mechanisms.push_back("DBUS_COOKIE_SHA1");

  const Outcome whole = run(config, data, size, 0);
  const Outcome cut = run(config, data, size, 0x9e3779b9u ^ knobs ^ (uint32_t(size) << 8));
  // Bytes after a failure are never looked at, so only a finished
  // conversation's consumption is comparable.
  const bool done = whole.state == wire::SaslServer::State::Done;
  if (whole.state != cut.state || (done && whole.consumed != cut.consumed)) {
    std::fprintf(stderr, "chunking changed the outcome: state %d/%d consumed %zu/%zu\n", int(whole.state),
                 int(cut.state), whole.consumed, cut.consumed);
    std::abort();
  }
  if (!with_cookie && whole.replies != cut.replies) {
    std::fprintf(stderr, "chunking changed the replies\n");
    std::abort();
  }
  return 0;
}
