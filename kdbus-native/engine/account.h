#pragma once
// What one sender has put into the bus and the bus still holds: the bytes
// and fds of its messages that some receiver's socket has not taken yet.
// A message carries a Charge against its sender's Account for as long as it
// exists, so a message shared by many receivers is charged once, until the
// last of them has written it out (dbus-daemon's incoming counter). The
// same charge also goes to the account of the sender's user (uid), which
// all that user's connections share, so one user can hold at most its
// quota of the bus however many connections it opens.
#include <cstddef>
#include <memory>

namespace kdbus {

class Account;

// Told when an account that was over its limit drops back under it.
class AccountListener {
 public:
  virtual ~AccountListener() = default;
  virtual void account_drained(Account& a) = 0;
};

class Account {
 public:
  size_t bytes() const { return bytes_; }
  size_t fds() const { return fds_; }
  // Whether the holder should stop taking input (and be told through the
  // listener once the charge drops under the limits again).
  bool over(size_t max_bytes, size_t max_fds) {
    const bool full = (max_bytes != 0 && bytes_ >= max_bytes) || (max_fds != 0 && fds_ >= max_fds);
    if (full) {
      waiting_ = true;
      max_bytes_ = max_bytes;
      max_fds_ = max_fds;
    }
    return full;
  }
  // Null once the holder is gone; charges may outlive it.
  void set_listener(AccountListener* l) { listener_ = l; }
  // What every account together holds (the engine is single-threaded).
  static size_t total_bytes() { return total_bytes_; }

 private:
  friend class Charge;
  void add(size_t bytes, size_t fds, bool in_total = true) {
    bytes_ += bytes;
    fds_ += fds;
    if (in_total) total_bytes_ += bytes;
  }
  void remove(size_t bytes, size_t fds, bool in_total = true);

  size_t bytes_ = 0, fds_ = 0;
  size_t max_bytes_ = 0, max_fds_ = 0;
  bool waiting_ = false;
  AccountListener* listener_ = nullptr;
  static inline size_t total_bytes_ = 0;
};

// Move-only: releases what it charged when destroyed.
class Charge {
 public:
  Charge() = default;
  // `user` may be null (a user without a quota).
  Charge(std::shared_ptr<Account> account, std::shared_ptr<Account> user, size_t bytes, size_t fds)
      : account_(std::move(account)), user_(std::move(user)), bytes_(bytes), fds_(fds) {
    if (account_) account_->add(bytes_, fds_);
    if (user_) user_->add(bytes_, fds_, false);
  }
  ~Charge() { release(); }
  Charge(Charge&& o) noexcept
      : account_(std::move(o.account_)), user_(std::move(o.user_)), bytes_(o.bytes_), fds_(o.fds_) {}
  Charge& operator=(Charge&& o) noexcept {
    if (this != &o) {
      release();
      account_ = std::move(o.account_);
      user_ = std::move(o.user_);
      bytes_ = o.bytes_;
      fds_ = o.fds_;
    }
    return *this;
  }
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;

  // What a snapshot records of it (snapshot.h).
  const Account* account() const { return account_.get(); }
  size_t bytes() const { return bytes_; }
  size_t fds() const { return fds_; }

 private:
  // What the user holds in the bus counts only once in the total.
  void release() {
    if (account_) account_->remove(bytes_, fds_);
    if (user_) user_->remove(bytes_, fds_, false);
  }

  std::shared_ptr<Account> account_;
  std::shared_ptr<Account> user_;
  size_t bytes_ = 0, fds_ = 0;
};

}  // namespace kdbus
