#pragma once
// Byte buffers that large message bodies are read into and sent from. A
// buffer goes back to its pool when the last message referring to it is
// gone, so a stream of large messages reuses a few buffers instead of
// allocating (and having the allocator hand pages back and forth to the
// kernel) per message.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace kdbus {

class BufferPool {
 public:
  // Keeps at most `max_buffers` idle buffers, none larger than `max_buffer`
  // and together at most `max_idle_bytes`.
  BufferPool(size_t max_buffers, size_t max_buffer, size_t max_idle_bytes);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // An idle buffer of at least `size` bytes, or else a new one of `fresh`
  // bytes (which the caller grows as it needs); contents unspecified.
  std::shared_ptr<std::vector<uint8_t>> take(size_t size, size_t fresh);

  size_t idle() const;
  size_t idle_bytes() const;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace kdbus
