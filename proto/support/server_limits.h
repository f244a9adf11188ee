// Resource bounds every Phoenix gRPC server sets, so that no caller can hold all of a server's
// threads or make it buffer without bound.
//
// A synchronous server runs each call on a thread of its own. Streaming calls such as WatchEvents
// or GuestLogs --follow keep theirs for as long as the client stays: StreamLimiter keeps them to
// max_streams, and past it a new stream gets RESOURCE_EXHAUSTED at once. The thread quota is only a
// backstop well above that: when it is reached, gRPC queues new calls until a thread frees, which
// would make the server deaf, so the stream bound must be what callers meet first.
//
// Thread-safety: ApplyServerLimits before BuildAndStart, on the thread that builds the server.
// StreamLimiter is thread-safe.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <utility>

#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/status.h>

namespace phoenix {

struct ServerLimits {
  // Long-lived streaming calls at once, all connections together (StreamLimiter).
  int max_streams = 32;
  // Threads the synchronous server may use at once: a backstop above the streams' share.
  int max_threads() const { return 4 * max_streams + 64; }
  // Calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
  int max_streams_per_connection = 32;
  // Largest request message.
  int max_receive_bytes = 4 * 1024 * 1024;
};

inline void ApplyServerLimits(grpc::ServerBuilder& builder, const ServerLimits& limits) {
  grpc::ResourceQuota quota("phoenix-server");
  quota.SetMaxThreads(limits.max_threads());
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams_per_connection);
  builder.SetMaxReceiveMessageSize(limits.max_receive_bytes);
  // gRPC sets SO_REUSEPORT by default: a second supervisor or agent on the same port would then
  // silently take a share of the connections. A taken port must fail the start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

class StreamLimiter {
 public:
  explicit StreamLimiter(int max) : max_(max) {}
  StreamLimiter(const StreamLimiter&) = delete;
  StreamLimiter& operator=(const StreamLimiter&) = delete;

  // Held by a streaming handler for its whole life.
  class Slot {
   public:
    explicit Slot(std::atomic<int>* open) : open_(open) {}
    Slot(Slot&& o) noexcept : open_(std::exchange(o.open_, nullptr)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (open_ != nullptr) open_->fetch_sub(1);
    }

   private:
    std::atomic<int>* open_;
  };

  // A slot, or RESOURCE_EXHAUSTED (with `what` in the message) when max streams are open.
  std::optional<Slot> TryAcquire() {
    if (open_.fetch_add(1) >= max_) {
      open_.fetch_sub(1);
      return std::nullopt;
    }
    return Slot(&open_);
  }
  grpc::Status Exhausted(const std::string& what) const {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        std::to_string(max_) + " streams are open on this server already (" + what +
                            "); close a --follow or raise --max-streams");
  }

 private:
  const int max_;
  std::atomic<int> open_{0};
};

}  // namespace phoenix
