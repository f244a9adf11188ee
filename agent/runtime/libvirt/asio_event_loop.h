// AsioEventLoop: libvirt's event loop (fd watches and timeouts, virEventRegisterImpl) implemented
// on a Boost.Asio io_context, so libvirt's keepalives, connection-close detection and domain events
// run on the agent's one event loop instead of a thread spinning virEventRunDefaultImpl.
//
// Ownership: Install() creates the process-wide instance once and hands it to libvirt, which keeps
// using it until the process exits; it is never destroyed. The io_context given to Install must
// outlive all libvirt use (in practice: the process). Tests may also Create() private instances and
// call the Add/Update/Remove methods directly.
//
// Threading: libvirt calls Add/Update/Remove from any thread (including threads blocked in libvirt
// calls); the tables are guarded by a mutex and every Asio object is touched only on the io_context
// thread. Handle and timeout callbacks run only on the io_context thread, which must be run by ONE
// thread (level-triggered readiness is re-checked with poll() on that thread). Following libvirt's
// rules: a removed watch/timeout is never dispatched again once Remove returned on the io thread (a
// remove from another thread can race with a dispatch already under way, as in libvirt's own loop),
// and its free callback runs later on the io thread, never inside Remove.
#pragma once

#include <libvirt/libvirt.h>

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <mutex>

#include "proto/support/error.h"

namespace phoenix::agent::libvirt {

class AsioEventLoop : public std::enable_shared_from_this<AsioEventLoop> {
 public:
  static std::shared_ptr<AsioEventLoop> Create(boost::asio::io_context& io);

  // Registers the process-wide loop on `io` with libvirt (virEventRegisterImpl). Idempotent for the
  // same io_context; FailedPrecondition when already installed on another one. Call before the
  // first virConnectOpen.
  static Result<void> Install(boost::asio::io_context& io);

  AsioEventLoop(const AsioEventLoop&) = delete;
  AsioEventLoop& operator=(const AsioEventLoop&) = delete;
  ~AsioEventLoop();

  // The virEventAddHandleFunc family. Return -1 on bad arguments / unknown ids, as libvirt expects.
  int AddHandle(int fd, int events, virEventHandleCallback cb, void* opaque, virFreeCallback ff);
  void UpdateHandle(int watch, int events);
  int RemoveHandle(int watch);
  // `ms`: -1 disabled, 0 fires on every loop iteration, >0 period in milliseconds.
  int AddTimeout(int ms, virEventTimeoutCallback cb, void* opaque, virFreeCallback ff);
  void UpdateTimeout(int timer, int ms);
  int RemoveTimeout(int timer);

  // Watches and timeouts not yet removed (for tests and diagnostics).
  size_t ActiveCountForTest() const;

 private:
  struct Watch;
  struct Timer;

  explicit AsioEventLoop(boost::asio::io_context& io);

  // All run on the io thread.
  void SyncWatch(const std::shared_ptr<Watch>& w);
  void Pump(const std::shared_ptr<Watch>& w);
  void DispatchWatch(const std::shared_ptr<Watch>& w, int revents);
  void SyncTimer(const std::shared_ptr<Timer>& t);
  void ArmTimer(const std::shared_ptr<Timer>& t, int interval, uint64_t generation);
  void FireTimer(const std::shared_ptr<Timer>& t, uint64_t generation);

  boost::asio::io_context& io_;
  mutable std::mutex mu_;
  int next_id_ = 1;
  std::map<int, std::shared_ptr<Watch>> watches_;
  std::map<int, std::shared_ptr<Timer>> timers_;
};

}  // namespace phoenix::agent::libvirt
