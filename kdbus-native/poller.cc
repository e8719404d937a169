#include "poller.h"

#include <cerrno>

namespace bridge {
namespace {

constexpr uint32_t kReadEdges = EPOLLIN | EPOLLRDHUP | EPOLLET;

int control(int epfd, int op, int fd, uint32_t events, Pollable* p) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = p;
  return ::epoll_ctl(epfd, op, fd, &ev) == 0 ? 0 : errno;
}

}  // namespace

Poller::Poller() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epfd_.valid()) error_ = errno;
}

int Poller::add(int fd, Pollable* p, bool writable) {
  return control(epfd_.get(), EPOLL_CTL_ADD, fd, kReadEdges | (writable ? EPOLLOUT : 0u), p);
}

int Poller::add_listener(int fd, Pollable* p) { return control(epfd_.get(), EPOLL_CTL_ADD, fd, EPOLLIN, p); }

int Poller::pause_listener(int fd, Pollable* p, bool paused) {
  return control(epfd_.get(), EPOLL_CTL_MOD, fd, paused ? 0u : static_cast<uint32_t>(EPOLLIN), p);
}

int Poller::watch_writable(int fd, Pollable* p) {
  return control(epfd_.get(), EPOLL_CTL_MOD, fd, kReadEdges | EPOLLOUT, p);
}

int Poller::ready(struct epoll_event* out, int max) {
  int n;
  do {
    n = ::epoll_wait(epfd_.get(), out, max, 0);
  } while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace bridge
