// HealthMonitor: probes one guest endpoint every interval and reports changes of verdict.
//
// Rules: the first success reports healthy; `unhealthy_threshold` consecutive failures report
// unhealthy; a success after that reports healthy again. Only changes are reported. Failures during
// `start_period` after Start are not counted (the guest is still booting); the first success ends
// the start period early. Probes never overlap: the next one starts `interval` after the previous
// one finished, and each is bounded by its target's timeout.
//
// Threading and ownership: create, use and destroy on the io_context's loop thread; `on_change`
// runs there. After Stop() or destruction no callback runs and the in-flight probe's socket is
// closed. `on_change` may call Stop(), Start() or destroy the monitor.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/health/probe.h"
#include "proto/support/error.h"

namespace phoenix::agent::health {

struct Verdict {
  bool healthy = false;
  // The deciding probe's detail; for unhealthy also the failure count:
  // "HTTP 503 (3 consecutive failures)".
  std::string detail;
};

class HealthMonitor {
 public:
  explicit HealthMonitor(boost::asio::io_context& io) : io_(io) {}
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Begins probing now; replaces any previous run (its verdict history is dropped). Errors:
  // kInvalidArgument naming the bad parameter (interval, unhealthy_threshold, start_period,
  // target.port, target.timeout, on_change).
  [[nodiscard]] Result<void> Start(ProbeTarget target, std::chrono::milliseconds interval,
                                   int unhealthy_threshold, std::chrono::milliseconds start_period,
                                   std::function<void(Verdict)> on_change);

  // Cancels the timer and the in-flight probe. Idempotent.
  void Stop();

  bool running() const { return run_ != nullptr; }

 private:
  class Run;

  boost::asio::io_context& io_;
  std::shared_ptr<Run> run_;
};

}  // namespace phoenix::agent::health
