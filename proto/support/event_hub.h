// EventHub: wakes up event watchers (gRPC WatchEvents streams) when an event is appended.
// Events themselves live in a durable store (AgentStore, StateStore); the hub only carries "the
// newest sequence is now N", so a slow watcher never holds memory and reads what it missed from the
// store.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace phoenix {

class EventHub {
 public:
  explicit EventHub(uint64_t last_sequence = 0) : last_(last_sequence) {}

  void Published(uint64_t sequence) {
    {
      std::lock_guard lock(mu_);
      if (sequence > last_) last_ = sequence;
    }
    cv_.notify_all();
  }

  // Blocks until an event newer than `seen` exists or `timeout` passes; returns the newest
  // sequence.
  uint64_t WaitNewerThan(uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return last_ > seen; });
    return last_;
  }

  uint64_t last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t last_;  // guarded by mu_
};

}  // namespace phoenix
