#pragma once
// Readiness of the client sockets, through one edge-triggered epoll instance
// of our own that libuv watches as a single fd. A socket is registered once
// when it is accepted and leaves the set when it is closed: no epoll_ctl per
// connection beyond that, none per wakeup, and writability is watched only
// for sockets that have once been full.
#include <sys/epoll.h>

#include <cstdint>

#include "util/fd.h"

namespace bridge {

class Pollable {
 public:
  // events: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR.
  virtual void on_events(uint32_t events) = 0;
  // Listening sockets are served first: a client that just connected waits
  // for its answer, what the others sent can wait a moment.
  virtual bool is_listener() const { return false; }

 protected:
  ~Pollable() = default;
};

class Poller {
 public:
  Poller();
  bool valid() const { return epfd_.valid(); }
  int error() const { return error_; }  // why it is not valid
  int fd() const { return epfd_.get(); }

  // Edges of readability and hang-up of `fd` (and of writability with
  // `writable`) go to `p` until fd is closed. 0 or an errno.
  int add(int fd, Pollable* p, bool writable = false);
  // A listening socket: readable (level) while connections wait.
  int add_listener(int fd, Pollable* p);
  // Stops or resumes reporting a listener's readiness.
  int pause_listener(int fd, Pollable* p, bool paused);
  // From now on edges of writability too.
  int watch_writable(int fd, Pollable* p);
  // Up to `max` ready sockets, without waiting; -1 on error.
  int ready(struct epoll_event* out, int max);

 private:
  util::UniqueFd epfd_;
  int error_ = 0;
};

}  // namespace bridge
