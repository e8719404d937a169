// The server's part of a handover snapshot (docs/handover-native.md):
// listeners, clients and the engine, and stopping and resuming the I/O
// around taking it.
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "engine/snapshot.h"
#include "peer.h"
#include "server.h"
#include "util/snapshot_io.h"

namespace bridge {

namespace {

// Messages are charged to the peer that sent them (or whose call the bus
// answered): the key is that peer's connection id.
struct SaveHooks : kdbus::SnapshotHooks {
  std::unordered_map<const kdbus::Account*, uint64_t> keys;
  uint64_t account_key(const kdbus::Account* a) override {
    auto it = keys.find(a);
    return it == keys.end() ? 0 : it->second;
  }
  kdbus::Charge charge(uint64_t, size_t, size_t) override { return {}; }
  void* owner(kdbus::ConnId, uint64_t) override { return nullptr; }
  void message_saved(const kdbus::Message* m, uint32_t i) override { table.emplace(m, i); }
  std::unordered_map<const kdbus::Message*, uint32_t> table;
};

struct LoadHooks : kdbus::SnapshotHooks {
  void* server = nullptr;
  std::unordered_map<kdbus::ConnId, Peer*> peers;
  uint64_t account_key(const kdbus::Account*) override { return 0; }
  kdbus::Charge charge(uint64_t key, size_t bytes, size_t fds) override {
    auto it = peers.find(key);
    if (it == peers.end()) return {};
    return kdbus::Charge(it->second->account(), it->second->user_account(), bytes, fds);
  }
  void* owner(kdbus::ConnId id, uint64_t flags) override {
    if (flags & kdbus::kHelloActivator) return server;
    auto it = peers.find(id);
    if (it == peers.end()) throw snap::FormatError("snapshot: a connection without its client");
    return it->second;
  }
  void message_loaded(uint32_t, const std::shared_ptr<const kdbus::Message>& m) override { table.push_back(m); }
  std::vector<std::shared_ptr<const kdbus::Message>> table;
};

// Output staged for a socket keeps its message's charge against the sender
// until written: each staged output names the engine message it shares
// (OUTC_SHARED), or carries the charge of one no queue holds any more
// (OUTC_OWN, once per message however many peers staged it).
enum : uint8_t { OUTC_NONE = 0, OUTC_SHARED = 1, OUTC_OWN = 2 };

}  // namespace

void Server::freeze() {
  if (frozen_) return;
  frozen_ = true;
  if (poller_watch_) uv_poll_stop(poller_watch_.get());
  for (uv_timer_t* t : {reply_timer_.get(), sweep_timer_.get(), resume_timer_.get()}) {
    if (t != nullptr) uv_timer_stop(t);
  }
  reply_timer_due_ = 0;
  if (unread_idle_) uv_idle_stop(unread_idle_.get());
}

void Server::thaw() {
  if (!frozen_) return;
  frozen_ = false;
  if (poller_watch_) watch_poller();
  if (listeners_paused_) resume_listeners();
  arm_reply_timer();
  for (auto& kv : peers_) {
    if (kv.first->counted_incomplete || kv.first->fds_pending_since_ms != 0) {
      arm_sweep();
      break;
    }
  }
  if (!unread_.empty() && unread_idle_)
    uv_idle_start(unread_idle_.get(), [](uv_idle_t* h) { static_cast<Server*>(h->data)->on_idle(); });
}

void Server::save(snap::Writer& w) {
  const uint64_t now = uv_now(loop_);
  size_t at = w.begin_section(snap::tag("SRVR"));
  w.u32(serial_);
  w.u32(static_cast<uint32_t>(activator_names_.size()));
  for (const auto& [id, name] : activator_names_) {
    w.u64(id);
    w.str(name);
  }
  w.end_section(at);

  at = w.begin_section(snap::tag("LSTN"));
  uint32_t open = 0;
  for (const auto& ls : listeners_) open += ls->listener.fd.valid();
  w.u32(open);
  for (const auto& ls : listeners_) {
    if (!ls->listener.fd.valid()) continue;
    w.u32(w.fd(ls->listener.fd.get()));
    w.u8(ls->listener.is_unix);
    w.str(ls->listener.connect_address);
    w.str(ls->listener.unlink_path);
  }
  w.end_section(at);

  SaveHooks hooks;
  at = w.begin_section(snap::tag("PEER"));
  uint32_t live = 0;
  for (const auto& kv : peers_) live += !kv.first->closed();
  w.u32(live);
  for (const auto& kv : peers_) {
    Peer* p = kv.first;
    if (p->closed()) continue;
    p->save(w, now);
    if (p->id() != 0) hooks.keys.emplace(p->account().get(), p->id());
  }
  w.end_section(at);

  bus_.save(w, &hooks);

  at = w.begin_section(snap::tag("OUTC"));
  w.u32(live);
  std::unordered_map<const kdbus::Message*, uint32_t> own;
  for (const auto& kv : peers_) {
    const Peer* p = kv.first;
    if (p->closed()) continue;
    const std::vector<const kdbus::Message*> staged = p->staged_messages();
    w.u32(static_cast<uint32_t>(staged.size()));
    for (const kdbus::Message* m : staged) {
      if (m == nullptr || m->charge.account() == nullptr) {
        w.u8(OUTC_NONE);
      } else if (auto shared = hooks.table.find(m); shared != hooks.table.end()) {
        w.u8(OUTC_SHARED);
        w.u32(shared->second);
      } else {
        w.u8(OUTC_OWN);
        w.u32(own.emplace(m, static_cast<uint32_t>(own.size())).first->second);
        w.u64(hooks.account_key(m->charge.account()));
        w.u64(m->charge.bytes());
        w.u64(m->charge.fds());
      }
    }
  }
  w.end_section(at);
}

void Server::restore(snap::Reader& sections) {
  if (!listeners_.empty() || !peers_.empty()) throw snap::FormatError("snapshot: restoring into a server in use");
  std::unordered_map<uint32_t, snap::Reader> parts;
  uint32_t tag = 0;
  snap::Reader body(nullptr, 0, nullptr);
  while (sections.next_section(tag, body)) parts.insert_or_assign(tag, body);
  const std::pair<uint32_t, const char*> needed[] = {
      {snap::tag("SRVR"), "SRVR"}, {snap::tag("LSTN"), "LSTN"}, {snap::tag("PEER"), "PEER"}, {snap::tag("ENGN"), "ENGN"}};
  for (const auto& [t, name] : needed) {
    if (!parts.count(t)) throw snap::FormatError(std::string("snapshot: no ") + name + " section");
  }
  const uint64_t now = uv_now(loop_);

  snap::Reader& srv = parts.at(snap::tag("SRVR"));
  const uint32_t serial = srv.u32();
  std::vector<std::pair<kdbus::ConnId, std::string>> activators;
  for (uint32_t n = srv.count(16), i = 0; i < n; ++i) {
    const kdbus::ConnId id = srv.u64();
    activators.emplace_back(id, srv.str());
  }

  snap::Reader& lr = parts.at(snap::tag("LSTN"));
  std::vector<std::unique_ptr<ListenSocket>> listeners;
  for (uint32_t n = lr.count(21), i = 0; i < n; ++i) {
    auto ls = std::make_unique<ListenSocket>();
    ls->server = this;
    ls->listener.fd = lr.need_fd();
    ls->listener.is_unix = lr.u8() != 0;
    ls->listener.connect_address = lr.str();
    ls->listener.unlink_path = lr.str();
    listeners.push_back(std::move(ls));
  }

  snap::Reader& pr = parts.at(snap::tag("PEER"));
  std::vector<std::unique_ptr<Peer>> peers;
  LoadHooks hooks;
  hooks.server = this;
  for (uint32_t n = pr.count(60), i = 0; i < n; ++i) {
    util::UniqueFd fd = pr.need_fd();
    const bool is_unix = pr.u8() != 0;
    auto p = std::make_unique<Peer>(*this, std::move(fd), is_unix);
    p->load(pr, now);
    if (p->id() != 0 && !hooks.peers.emplace(p->id(), p.get()).second)
      throw snap::FormatError("snapshot: two clients with one connection id");
    if (p->counted_completed && p->counted_uid != static_cast<uid_t>(-1) && p->counted_uid != 0)
      p->set_user_account(user_account(p->counted_uid));
    peers.push_back(std::move(p));
  }

  try {
    bus_.load(parts.at(snap::tag("ENGN")), &hooks);
    // Written by later versions only: without it staged output is uncharged.
    if (auto outc = parts.find(snap::tag("OUTC")); outc != parts.end()) {
      snap::Reader& r = outc->second;
      if (r.count(4) != peers.size()) throw snap::FormatError("snapshot: output charges for other clients");
      std::unordered_map<uint32_t, std::shared_ptr<const kdbus::Message>> own;
      for (auto& p : peers) {
        const uint32_t n = r.count(1);
        if (n != p->staged_count()) throw snap::FormatError("snapshot: output charges for other output");
        for (uint32_t i = 0; i < n; ++i) {
          const uint8_t kind = r.u8();
          if (kind == OUTC_SHARED) {
            const uint32_t index = r.u32();
            if (index >= hooks.table.size()) throw snap::FormatError("snapshot: message index out of range");
            p->keep_staged(i, hooks.table[index]);
          } else if (kind == OUTC_OWN) {
            const uint32_t group = r.u32();
            const uint64_t key = r.u64();
            const uint64_t bytes = r.u64();
            const uint64_t fds = r.u64();
            auto& holder = own[group];
            if (!holder) {
              // Only its charge: the bytes are the staged output's own copy.
              auto m = std::make_shared<kdbus::Message>();
              m->charge = hooks.charge(key, bytes, fds);
              holder = std::move(m);
            }
            p->keep_staged(i, holder);
          } else if (kind != OUTC_NONE) {
            throw snap::FormatError("snapshot: unknown output charge");
          }
        }
      }
    }
  } catch (...) {
    // What the load reported ready points at the peers about to go.
    dirty_.clear();
    activations_due_.clear();
    throw;
  }

  // Nothing below can fail: the server takes it all over and starts.
  Batch batch(*this);
  serial_ = serial;
  for (auto& [id, name] : activators) {
    activators_[name] = id;
    activator_names_[id] = name;
  }
  // Their calls are the control plane's business (it carries the starts
  // under way); a queue reported ready on load is not a new activation.
  activations_due_.clear();
  for (auto& ls : listeners) {
    if (int e = poller_.add_listener(ls->listener.fd.get(), ls.get())) {
      if (debug_) std::fprintf(stderr, "kdbus-bridge: cannot watch a listener after restore: %s\n", std::strerror(e));
    }
    listeners_.push_back(std::move(ls));
  }
  bool sweep = false;
  for (auto& owned : peers) {
    Peer* p = owned.get();
    peers_.emplace(p, std::move(owned));
    if (p->id() != 0) by_id_[p->id()] = p;
    incomplete_ += p->counted_incomplete;
    completed_ += p->counted_completed;
    if (p->counted_uid != static_cast<uid_t>(-1)) ++per_user_[p->counted_uid];
    sweep = sweep || p->counted_incomplete || p->fds_pending_since_ms != 0;
    p->watch();
    if (p->has_output() || p->id() != 0) mark_dirty(p);
    if (p->has_input()) read_later(p);
  }
  if (sweep) arm_sweep();
  arm_reply_timer();
}

void Server::abandon() {
  for (auto& ls : listeners_) ls->listener.unlink_path.clear();
}

}  // namespace bridge
