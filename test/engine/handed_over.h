#pragma once
// What a handover gives the new bus: fds of its own, copies of the old bus's,
// which the restored objects then take over. A bus loaded in the same process
// as the one saved must not take the saved bus's own fds.
#include <fcntl.h>

#include <vector>

namespace enginetest {

inline std::vector<int> handed_over(const std::vector<int>& fds) {
  std::vector<int> copies;
  copies.reserve(fds.size());
  for (int fd : fds) copies.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  return copies;
}

}  // namespace enginetest
