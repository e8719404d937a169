#pragma once
// Saving the engine into a handover snapshot and reading it back
// (docs/handover.md, section "ENGN"). The pieces the bus is made of save
// themselves here; Bus::save / Bus::load (bus.cc) put them together.
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "../util/snapshot_io.h"
#include "account.h"
#include "match.h"
#include "message.h"
#include "metadata.h"

namespace kdbus {

// What the engine cannot know by itself: whose accounts messages are
// charged to, and who owns a restored connection.
class SnapshotHooks {
 public:
  virtual ~SnapshotHooks() = default;
  // A key naming the account a charge is against (0: none), and the charge
  // made again from it on load.
  virtual uint64_t account_key(const Account* a) = 0;
  virtual Charge charge(uint64_t key, size_t bytes, size_t fds) = 0;
  // The owner QueueListener calls hand back for a restored connection.
  virtual void* owner(ConnId id, uint64_t flags) = 0;
  // Each message of the table, with its index, as it is written and read:
  // what a server keeps outside the engine (output staged for a socket)
  // can then refer to the same message.
  virtual void message_saved(const Message*, uint32_t) {}
  virtual void message_loaded(uint32_t, const std::shared_ptr<const Message>&) {}
};

namespace snapshot {

void save_metadata(snap::Writer& w, const Metadata& md);
Metadata load_metadata(snap::Reader& r);

void save_rule(snap::Writer& w, const MatchRule& rule);
MatchRule load_rule(snap::Reader& r);

// Messages shared by several queues are written once; queues name them by
// their index in this table.
class MessageTable {
 public:
  // Index of `m`, adding it when new.
  uint32_t index(const std::shared_ptr<const Message>& m);
  void save(snap::Writer& w, SnapshotHooks* hooks) const;

  void load(snap::Reader& r, SnapshotHooks* hooks);
  const std::shared_ptr<const Message>& at(uint32_t i) const;

 private:
  std::unordered_map<const Message*, uint32_t> ids_;
  std::vector<std::shared_ptr<const Message>> list_;
};

}  // namespace snapshot
}  // namespace kdbus
