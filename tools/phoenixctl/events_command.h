// `phoenixctl events`: the supervisor's cluster event log when a supervisor is configured
// (--supervisor or $PHOENIX_SUPERVISOR), else the agent's event log (or with --agent); printed once
// or followed. Also StreamFeed, the bounded-wait reader of a server stream (EventFeed: the agent's
// WatchEvents) that the bench uses to time restarts.
//
// Threading: a StreamFeed reads the stream on its own thread and hands messages over through a
// queue, so that every wait of the caller can carry its own deadline (a blocking gRPC Read cannot).
// The stub must outlive the feed. Destroying the feed cancels the call and joins the thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunEventsCommand(Context& ctx, std::span<const std::string> args);

// One line per agent event: "SEQ  TIME  TYPE  GUEST  MESSAGE", fixed-width so a followed stream
// lines up.
std::string FormatEventLine(const v1::Event& event);
std::string EventHeaderLine();
// One line per cluster event: "SEQ  TIME  TYPE  SERVICE  NODE  MESSAGE".
std::string FormatClusterEventLine(const v1::ClusterEvent& event);
std::string ClusterEventHeaderLine();
std::string ClusterEventTypeName(v1::ClusterEventType type);  // "replica-placed", "node-down", ...

template <typename Message>
class StreamFeed {
 public:
  using Clock = std::chrono::steady_clock;
  // Starts the call on the feed's own ClientContext (open may add metadata to it first).
  using Open =
      std::function<std::unique_ptr<grpc::ClientReaderInterface<Message>>(grpc::ClientContext*)>;

  explicit StreamFeed(const Open& open) {
    reader_ = open(&context_);
    thread_ = std::thread([this] { ReadLoop(); });
  }
  ~StreamFeed() {
    context_.TryCancel();
    thread_.join();
  }
  StreamFeed(const StreamFeed&) = delete;
  StreamFeed& operator=(const StreamFeed&) = delete;

  // The next message; DEADLINE_EXCEEDED when none arrives before `deadline`; the stream's status
  // (or UNAVAILABLE "... ended the event stream") once the stream is over; CANCELLED once
  // Interrupted().
  [[nodiscard]] Result<Message> Next(Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    // Waits in short slices so that an interrupted command (Ctrl-C) still gets to clean up.
    while (queue_.empty() && !done_ && Clock::now() < deadline) {
      if (Interrupted()) return MakeError(ErrorCode::kCancelled, "interrupted");
      cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(100)),
                     [this] { return !queue_.empty() || done_; });
    }
    if (!queue_.empty()) {
      Message message = std::move(queue_.front());
      queue_.pop_front();
      return message;
    }
    if (done_) {
      if (!status_.ok()) return std::unexpected(FromGrpcStatus(status_));
      return Unavailable("the server ended the event stream");
    }
    return MakeError(ErrorCode::kDeadlineExceeded, "no event in time");
  }

 private:
  void ReadLoop() {
    Message message;
    while (reader_->Read(&message)) {
      std::lock_guard lock(mu_);
      queue_.push_back(message);
      cv_.notify_all();
    }
    grpc::Status status = reader_->Finish();
    std::lock_guard lock(mu_);
    done_ = true;
    status_ = status;
    cv_.notify_all();
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderInterface<Message>> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Message> queue_;
  bool done_ = false;
  grpc::Status status_;
  std::thread thread_;
};

// The agent's WatchEvents, through ctx's agent connection (DialAgent first).
class EventFeed : public StreamFeed<v1::Event> {
 public:
  EventFeed(Context& ctx, v1::WatchEventsRequest request)
      : StreamFeed<v1::Event>([&ctx, &request](grpc::ClientContext* context) {
          ctx.AddAgentAuth(*context);
          return ctx.Stub().WatchEvents(context, request);
        }) {}
};

}  // namespace phoenix::ctl
