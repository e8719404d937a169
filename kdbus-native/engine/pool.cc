#include "pool.h"

#include <algorithm>
#include <utility>

namespace kdbus {

using Buffer = std::vector<uint8_t>;

struct BufferPool::State {
  size_t max_buffers;
  size_t max_buffer;
  size_t max_idle_bytes;
  size_t idle_bytes = 0;
  std::vector<std::unique_ptr<Buffer>> idle;

  void give_back(std::unique_ptr<Buffer> b) {
    if (b->size() > max_buffer) return;
    if (idle.size() >= max_buffers) {
      // Keep the larger ones: they serve every smaller request too.
      auto smallest = std::min_element(idle.begin(), idle.end(),
                                       [](const auto& a, const auto& c) { return a->size() < c->size(); });
      if ((*smallest)->size() >= b->size()) return;
      if (idle_bytes - (*smallest)->size() + b->size() > max_idle_bytes) return;
      idle_bytes = idle_bytes - (*smallest)->size() + b->size();
      *smallest = std::move(b);
      return;
    }
    // Beyond that the memory goes back to the allocator once a burst is over.
    if (idle_bytes + b->size() > max_idle_bytes) return;
    idle_bytes += b->size();
    idle.push_back(std::move(b));
  }

  // Returns the buffer to the pool if the pool still exists.
  struct GiveBack {
    std::weak_ptr<State> pool;
    void operator()(Buffer* raw) const {
      std::unique_ptr<Buffer> owned(raw);
      if (auto s = pool.lock()) s->give_back(std::move(owned));
    }
  };
};

BufferPool::BufferPool(size_t max_buffers, size_t max_buffer, size_t max_idle_bytes)
    : s_(std::make_shared<State>()) {
  s_->max_buffers = max_buffers;
  s_->max_buffer = max_buffer;
  s_->max_idle_bytes = max_idle_bytes;
}

BufferPool::~BufferPool() = default;

std::shared_ptr<Buffer> BufferPool::take(size_t size, size_t fresh) {
  auto& idle = s_->idle;
  // The smallest idle buffer that is large enough.
  auto best = idle.end();
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if ((*it)->size() >= size && (best == idle.end() || (*it)->size() < (*best)->size())) best = it;
  }
  std::unique_ptr<Buffer> b;
  if (best != idle.end()) {
    b = std::move(*best);
    *best = std::move(idle.back());
    idle.pop_back();
    s_->idle_bytes -= b->size();
  } else {
    b = std::make_unique<Buffer>(fresh);
  }
  return std::shared_ptr<Buffer>(b.release(), State::GiveBack{s_});
}

size_t BufferPool::idle() const { return s_->idle.size(); }

size_t BufferPool::idle_bytes() const { return s_->idle_bytes; }

}  // namespace kdbus
