#pragma once
// A queue that holds no memory while empty: std::deque allocates a map and
// a block (over 500 bytes) as soon as it exists, for every connection, also
// an idle one. Elements sit in a vector behind a read index; the vector is
// compacted when mostly consumed and released when drained and large.
#include <cstddef>
#include <utility>
#include <vector>

namespace util {

template <typename T>
class Fifo {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }

  template <typename... Args>
  T& emplace_back(Args&&... args) {
    // Moves what is left to the front once the consumed part is the larger
    // one, so a queue that never drains stays at most twice its content.
    if (head_ > 0 && head_ * 2 >= items_.size() && items_.size() == items_.capacity()) compact();
    return items_.emplace_back(std::forward<Args>(args)...);
  }
  void push_back(T v) { emplace_back(std::move(v)); }

  void pop_front() { pop_front(1); }
  void pop_front(size_t n) {
    for (size_t i = 0; i < n; ++i) items_[head_ + i] = T{};  // release what it owns now
    head_ += n;
    if (head_ == items_.size()) clear();
  }
  void clear() {
    head_ = 0;
    if (items_.capacity() * sizeof(T) > kKeepBytes) {
      std::vector<T>().swap(items_);
    } else {
      items_.clear();
    }
  }

 private:
  // What a drained queue may keep for the next burst.
  static constexpr size_t kKeepBytes = 256;

  void compact() {
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }

  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace util
