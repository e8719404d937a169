#include "account.h"

namespace kdbus {

void Account::remove(size_t bytes, size_t fds, bool in_total) {
  bytes_ -= bytes;
  fds_ -= fds;
  if (in_total) total_bytes_ -= bytes;
  if (!waiting_) return;
  const bool bytes_ok = max_bytes_ == 0 || bytes_ < max_bytes_;
  const bool fds_ok = max_fds_ == 0 || fds_ < max_fds_;
  if (!bytes_ok || !fds_ok) return;
  waiting_ = false;
  if (listener_ != nullptr) listener_->account_drained(*this);
}

}  // namespace kdbus
