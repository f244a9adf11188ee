// How a process-based Runtime (oci/, microvm/) learns that a guest's process exited and reports
// it: EventSink holds the callback Runtime::Watch installs; ExitWatch waits on the agent's
// io_context for pidfds to become readable and runs a callback once per watched process.
//
// Ownership: ExitWatch owns the pidfds handed to Watch() (closes them when the wait ends or is
// cancelled). Its io_context handlers may outlive it; they reach the callbacks only while it is
// alive.
//
// Threading: EventSink is thread-safe; Emit calls the sink on the caller's thread, outside its
// lock. ExitWatch::Watch may be called from any thread (registration is posted to the io_context);
// `on_exit` runs on the io_context thread with the watch's lock held, so Stop() (called by the
// owner's destructor before anything `on_exit` touches is destroyed) waits for a running
// `on_exit` and none runs after it. `on_exit` must not call back into its ExitWatch.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "agent/runtime/runtime.h"

namespace phoenix::agent {

class EventSink {
 public:
  void Set(std::function<void(const RuntimeEvent&)> sink);
  void Emit(const RuntimeEvent& event) const;

 private:
  mutable std::mutex mu_;
  std::function<void(const RuntimeEvent&)> sink_;
};

class ExitWatch {
 public:
  explicit ExitWatch(boost::asio::io_context& io);
  ~ExitWatch();
  ExitWatch(const ExitWatch&) = delete;
  ExitWatch& operator=(const ExitWatch&) = delete;

  // Takes `pidfd` (a dup the io_context may own: closing the caller's own pidfd in a worker must
  // not pull it away) and calls `on_exit` once when it becomes readable. Replaces (cancels) an
  // earlier watch of the same instance.
  void Watch(const std::string& instance, int pidfd, std::function<void()> on_exit);
  // Cancels all waits; no `on_exit` runs after it returns. Idempotent.
  void Stop();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace phoenix::agent
