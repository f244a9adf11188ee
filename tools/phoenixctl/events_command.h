// `phoenixctl events`: the agent's event log, printed once or followed. Also EventFeed, the
// bounded-wait reader of a WatchEvents stream that the bench uses to time restarts.
//
// Threading: EventFeed reads the stream on its own thread and hands events over through a queue,
// so that every wait of the caller can carry its own deadline (a blocking gRPC Read cannot).
// The stub must outlive the feed. Destroying the feed cancels the call and joins the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunEventsCommand(Context& ctx, std::span<const std::string> args);

// One line per event: "SEQ  TIME  TYPE  GUEST  MESSAGE", fixed-width so a followed stream lines up.
std::string FormatEventLine(const v1::Event& event);
std::string EventHeaderLine();

class EventFeed {
 public:
  using Clock = std::chrono::steady_clock;

  EventFeed(v1::AgentService::StubInterface& stub, v1::WatchEventsRequest request);
  ~EventFeed();
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  // The next event; DEADLINE_EXCEEDED when none arrives before `deadline`; the stream's status
  // (or UNAVAILABLE "event stream ended") once the stream is over; CANCELLED once Interrupted().
  [[nodiscard]] Result<v1::Event> Next(Clock::time_point deadline);

 private:
  void ReadLoop();

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderInterface<v1::Event>> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Event> queue_;
  bool done_ = false;
  grpc::Status status_;
  std::thread thread_;
};

}  // namespace phoenix::ctl
