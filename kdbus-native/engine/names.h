#pragma once
// The name registry: for each well-known name its primary owner, the queue
// of waiting connections (dbus-daemon's owner list: front = primary owner)
// and the activator standing in while nobody owns it. Pure bookkeeping: the
// bus turns the ownership changes reported here into notifications.
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "message.h"

namespace snap {
class Writer;
class Reader;
}  // namespace snap

namespace kdbus {

// One change of primary ownership: old_id 0 = the name had no owner, new_id
// 0 = the name has no owner any more.
struct NameTransfer {
  std::string name;
  ConnId old_id = 0;
  ConnId new_id = 0;
};

struct NameOwner {
  ConnId id = 0;
  uint64_t flags = 0;  // the RequestName flags as last requested
};

struct NameEntry {
  std::deque<NameOwner> owners;  // front: primary owner; the rest wait in order
  ConnId activator = 0;
};

// Told of every name a connection joins or leaves (owner or waiter), so the
// bus can keep per-user totals without walking the registry.
class NameCounter {
 public:
  virtual ~NameCounter() = default;
  virtual void names_changed(ConnId id, long delta) = 0;
};

class NameRegistry {
 public:
  void set_counter(NameCounter* c) { counter_ = c; }

  // Well-formed, and not one the bus keeps for itself: EINVAL for a
  // malformed name, EPERM for unique names and org.freedesktop.DBus.
  static int check_name(std::string_view name);

  // dbus-daemon's RequestName. 0 with kNameAcquired, 0 with kNameInQueue,
  // EALREADY (primary owner already; flags updated), EEXIST.
  int acquire(ConnId id, std::string_view name, uint64_t flags, uint64_t& return_flags, std::vector<NameTransfer>& out);
  // ESRCH no owner at all, EADDRINUSE the caller neither owns nor waits.
  int release(ConnId id, std::string_view name, std::vector<NameTransfer>& out);
  // Everything the connection owns or waits for, the most recently joined
  // first (dbus-daemon's order), then its activator entries (silently).
  void release_all(ConnId id, std::vector<NameTransfer>& out);

  int add_activator(ConnId id, std::string_view name);

  ConnId primary(std::string_view name) const;    // 0 when unowned
  ConnId activator(std::string_view name) const;  // 0 when none
  bool has_primary(ConnId id, std::string_view name) const { return id != 0 && primary(name) == id; }
  std::vector<std::string> primary_names(ConnId id) const;

  const std::map<std::string, NameEntry, std::less<>>& entries() const { return names_; }
  size_t owned_count() const;  // names with a primary owner
  // Names the connection owns or waits for; whether it holds `name` already.
  size_t joined_count(ConnId id) const;
  bool has_joined(ConnId id, std::string_view name) const;

  // Handover snapshot (snapshot.cc); load() fills an empty registry.
  void save(snap::Writer& w) const;
  void load(snap::Reader& r);

 private:
  void join(ConnId id, const std::string& name);
  void leave(ConnId id, const std::string& name);
  void gc(std::map<std::string, NameEntry, std::less<>>::iterator it);
  // Removes `id` from the owners of `it`; reports a transfer when it was primary.
  void remove_owner(std::map<std::string, NameEntry, std::less<>>::iterator it, ConnId id,
                    std::vector<NameTransfer>& out);

  std::map<std::string, NameEntry, std::less<>> names_;
  // Per connection, the names it owns or waits for, in the order it joined.
  std::unordered_map<ConnId, std::vector<std::string>> joined_;
  NameCounter* counter_ = nullptr;
};

}  // namespace kdbus
