#include "names.h"

#include <algorithm>
#include <cerrno>

#include "bus.h"
#include "validate.h"

namespace kdbus {
namespace {

constexpr uint64_t kStoredFlags = kNameReplaceExisting | kNameAllowReplacement | kNameQueue;

std::deque<NameOwner>::iterator find_owner(std::deque<NameOwner>& owners, ConnId id) {
  return std::find_if(owners.begin(), owners.end(), [id](const NameOwner& o) { return o.id == id; });
}

}  // namespace

int NameRegistry::check_name(std::string_view name) {
  if (!valid_bus_name(name)) return EINVAL;
  if (name[0] == ':' || name == "org.freedesktop.DBus") return EPERM;
  return 0;
}

void NameRegistry::join(ConnId id, const std::string& name) {
  joined_[id].push_back(name);
  if (counter_ != nullptr) counter_->names_changed(id, 1);
}

void NameRegistry::leave(ConnId id, const std::string& name) {
  auto it = joined_.find(id);
  if (it == joined_.end()) return;
  auto& v = it->second;
  // A name is joined once; searched from the newest, so that a name taken
  // and given back leaves at once however many older names the connection has.
  auto found = std::find(v.rbegin(), v.rend(), name);
  if (found == v.rend()) return;
  v.erase(std::next(found).base());
  if (counter_ != nullptr) counter_->names_changed(id, -1);
  if (v.empty()) joined_.erase(it);
}

void NameRegistry::gc(std::map<std::string, NameEntry, std::less<>>::iterator it) {
  if (it->second.owners.empty() && it->second.activator == 0) names_.erase(it);
}

void NameRegistry::remove_owner(std::map<std::string, NameEntry, std::less<>>::iterator it, ConnId id,
                                std::vector<NameTransfer>& out) {
  auto& owners = it->second.owners;
  auto pos = find_owner(owners, id);
  if (pos == owners.end()) return;
  bool was_primary = pos == owners.begin();
  owners.erase(pos);
  leave(id, it->first);
  if (was_primary) out.push_back({it->first, id, owners.empty() ? 0 : owners.front().id});
}

int NameRegistry::acquire(ConnId id, std::string_view name_view, uint64_t flags, uint64_t& return_flags,
                          std::vector<NameTransfer>& out) {
  return_flags = 0;
  if (int err = check_name(name_view)) return err;
  flags &= kStoredFlags;
  auto it = names_.find(name_view);
  if (it == names_.end()) it = names_.emplace(std::string(name_view), NameEntry{}).first;
  const std::string& name = it->first;
  auto& owners = it->second.owners;

  if (owners.empty()) {
    owners.push_back({id, flags});
    join(id, name);
    out.push_back({name, 0, id});
    return_flags = kNameAcquired | kNamePrimary;
    return 0;
  }
  NameOwner& primary = owners.front();
  if (primary.id == id) {
    primary.flags = flags;
    return_flags = kNamePrimary;
    return EALREADY;
  }

  const bool queue = flags & kNameQueue;
  const bool replace = flags & kNameReplaceExisting;
  const bool allowed = primary.flags & kNameAllowReplacement;

  if (!queue && (!allowed || !replace)) {
    // Not queueing means leaving the queue if already in it.
    auto pos = find_owner(owners, id);
    if (pos != owners.end()) {
      owners.erase(pos);
      leave(id, name);
    }
    return EEXIST;
  }

  // Enter the queue, or update the place in it: a replacement request goes
  // right behind the primary owner, ahead of earlier waiters.
  auto pos = find_owner(owners, id);
  if (pos == owners.end()) {
    if (replace) {
      owners.insert(owners.begin() + 1, NameOwner{id, flags});
    } else {
      owners.push_back({id, flags});
    }
    join(id, name);
  } else {
    pos->flags = flags;
    if (replace && pos != owners.begin() + 1) {
      NameOwner moved = *pos;
      owners.erase(pos);
      owners.insert(owners.begin() + 1, moved);
    }
  }

  if (!replace || !allowed) {
    return_flags = kNameInQueue;
    return 0;
  }

  // Replace: the old owner goes back into the queue right behind the new
  // one, unless it asked never to queue.
  NameOwner old = owners.front();
  owners.pop_front();
  if (old.flags & kNameQueue) {
    owners.insert(owners.begin() + 1, old);
  } else {
    leave(old.id, name);
  }
  out.push_back({name, old.id, id});
  return_flags = kNameAcquired | kNamePrimary;
  return 0;
}

int NameRegistry::release(ConnId id, std::string_view name, std::vector<NameTransfer>& out) {
  if (int err = check_name(name)) return err;
  auto it = names_.find(name);
  if (it == names_.end() || it->second.owners.empty()) return ESRCH;
  if (find_owner(it->second.owners, id) == it->second.owners.end()) return EADDRINUSE;
  remove_owner(it, id, out);
  gc(it);
  return 0;
}

void NameRegistry::release_all(ConnId id, std::vector<NameTransfer>& out) {
  auto j = joined_.find(id);
  if (j != joined_.end()) {
    std::vector<std::string> names = j->second;
    for (auto n = names.rbegin(); n != names.rend(); ++n) {
      auto it = names_.find(*n);
      if (it == names_.end()) continue;
      remove_owner(it, id, out);
      gc(it);
    }
    // remove_owner left every name it joined; anything else still counted goes too.
    j = joined_.find(id);
    if (j != joined_.end()) {
      if (counter_ != nullptr) counter_->names_changed(id, -static_cast<long>(j->second.size()));
      joined_.erase(j);
    }
  }
  for (auto it = names_.begin(); it != names_.end();) {
    auto next = std::next(it);
    if (it->second.activator == id) {
      it->second.activator = 0;
      gc(it);
    }
    it = next;
  }
}

int NameRegistry::add_activator(ConnId id, std::string_view name) {
  if (int err = check_name(name)) return err;
  auto it = names_.find(name);
  if (it == names_.end()) it = names_.emplace(std::string(name), NameEntry{}).first;
  if (it->second.activator != 0) return EEXIST;
  it->second.activator = id;
  return 0;
}

ConnId NameRegistry::primary(std::string_view name) const {
  auto it = names_.find(name);
  if (it == names_.end() || it->second.owners.empty()) return 0;
  return it->second.owners.front().id;
}

ConnId NameRegistry::activator(std::string_view name) const {
  auto it = names_.find(name);
  return it == names_.end() ? 0 : it->second.activator;
}

std::vector<std::string> NameRegistry::primary_names(ConnId id) const {
  std::vector<std::string> out;
  auto j = joined_.find(id);
  if (j == joined_.end()) return out;
  for (const std::string& n : j->second) {
    if (primary(n) == id) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t NameRegistry::owned_count() const {
  size_t n = 0;
  for (const auto& [name, e] : names_) n += e.owners.empty() ? 0 : 1;
  return n;
}

}  // namespace kdbus

namespace kdbus {

size_t NameRegistry::joined_count(ConnId id) const {
  auto it = joined_.find(id);
  return it == joined_.end() ? 0 : it->second.size();
}

// Through the name's queue, not the connection's names: a queue is short,
// a connection may hold thousands of names.
bool NameRegistry::has_joined(ConnId id, std::string_view name) const {
  auto it = names_.find(name);
  if (it == names_.end()) return false;
  for (const NameOwner& o : it->second.owners) {
    if (o.id == id) return true;
  }
  return false;
}

}  // namespace kdbus
