// The simulated agents: one gRPC channel and one AgentLink stream each, driven by gRPC's client
// callback API (a stream is a reactor object, not a thread) and one heartbeat thread for the whole
// fleet, so thousands fit in one process. Each agent says Hello, then sends a Status every
// Welcome.heartbeat_interval_ms; it applies nothing, but acknowledges every assignment at once by
// reporting its version as applied_version. A stream that ends stays ended (no reconnect): the
// figures count it.
//
// Ownership and threading: Fleet owns its agents and their channels; Add and Stop are called from
// one thread (the tool's main); Counts from any thread. The destructor stops the fleet.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

namespace phoenix::fleetsim {

class SimAgent;

class Fleet {
 public:
  // target: the supervisor's HOST:PORT. zones: how many zones the agents spread over.
  Fleet(std::string target, uint32_t zones);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Opens agent `index`'s channel (its own TCP connection) and stream; returns at once.
  // The node is NodeName(index) in ZoneName(index, zones).
  void Add(uint32_t index, std::shared_ptr<grpc::ChannelCredentials> credentials);

  struct Counts {
    uint32_t started = 0;  // streams opened
    uint32_t up = 0;       // welcomed and not ended
    uint32_t ended = 0;    // streams that finished, for any reason
    uint64_t heartbeats = 0;
    uint64_t assignments = 0;
    std::string first_error;  // the first stream's end status that was not ours
  };
  Counts Read() const;

  // Half-closes every stream, cancels those that have not finished within half of `timeout`, and
  // waits for the rest of it. False when some stream still had not finished (they are then leaked
  // rather than destroyed under gRPC's feet).
  bool Stop(std::chrono::milliseconds timeout);

 private:
  friend class SimAgent;
  void HeartbeatLoop();
  void AgentEnded(bool was_up, const std::string& error);

  const std::string target_;
  const uint32_t zones_;
  std::vector<std::unique_ptr<SimAgent>>
      agents_;  // touched by Add/Stop, read by the loop under mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  uint32_t finished_ = 0;  // agents whose OnDone has run
  std::string first_error_;

  std::atomic<uint32_t> up_{0};
  std::atomic<uint32_t> ended_{0};
  std::atomic<uint64_t> heartbeats_{0};
  std::atomic<uint64_t> assignments_{0};

  std::thread heartbeat_thread_;
};

}  // namespace phoenix::fleetsim
