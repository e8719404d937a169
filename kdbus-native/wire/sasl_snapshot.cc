#include "../util/snapshot_io.h"
#include "sasl.h"

namespace wire {

void SaslServer::save(snap::Writer& w) const {
  w.u32(peer_uid_);
  w.u8(got_nul_);
  w.str(in_);
  w.u8(static_cast<uint8_t>(phase_));
  w.u8(static_cast<uint8_t>(mech_));
  w.str(identity_);
  w.u8(asked_for_initial_response_);
  w.u32(static_cast<uint32_t>(failures_));
  w.u32(static_cast<uint32_t>(cookie_id_));
  w.str(server_challenge_hex_);
  w.str(cookie_hex_);
  w.u32(desired_uid_);
  w.u8(static_cast<uint8_t>(state_));
  w.u8(unix_fd_);
  w.u8(anonymous_);
  w.u32(uid_);
}

void SaslServer::load(snap::Reader& r) {
  peer_uid_ = r.u32();
  got_nul_ = r.u8() != 0;
  in_ = r.str();
  const uint8_t phase = r.u8(), mech = r.u8();
  if (phase > static_cast<uint8_t>(Phase::WaitingForBegin) || mech > static_cast<uint8_t>(Mech::Anonymous))
    throw snap::FormatError("snapshot: unknown SASL state");
  phase_ = static_cast<Phase>(phase);
  mech_ = static_cast<Mech>(mech);
  identity_ = r.str();
  asked_for_initial_response_ = r.u8() != 0;
  failures_ = static_cast<int>(r.u32());
  cookie_id_ = static_cast<int32_t>(r.u32());
  server_challenge_hex_ = r.str();
  cookie_hex_ = r.str();
  desired_uid_ = r.u32();
  const uint8_t state = r.u8();
  if (state > static_cast<uint8_t>(State::Failed)) throw snap::FormatError("snapshot: unknown SASL state");
  state_ = static_cast<State>(state);
  unix_fd_ = r.u8() != 0;
  anonymous_ = r.u8() != 0;
  uid_ = r.u32();
}

}  // namespace wire
