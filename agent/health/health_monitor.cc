#include "agent/health/health_monitor.h"

#include <optional>
#include <utility>

#include <boost/asio/steady_timer.hpp>

namespace phoenix::agent::health {

namespace asio = boost::asio;
using boost::system::error_code;

// One Start()..Stop() span. Shared with the pending timer and probe completions, which check
// `stopped_` so that nothing reaches `on_change` after Stop.
class HealthMonitor::Run : public std::enable_shared_from_this<Run> {
 public:
  Run(asio::io_context& io, ProbeTarget target, std::chrono::milliseconds interval, int threshold,
      std::chrono::milliseconds start_period, std::function<void(Verdict)> on_change)
      : io_(io),
        timer_(io),
        target_(std::move(target)),
        interval_(interval),
        threshold_(threshold),
        start_period_end_(std::chrono::steady_clock::now() + start_period),
        on_change_(std::move(on_change)) {}

  void ProbeNow() {
    probe_ = RunProbe(io_, target_, [self = shared_from_this()](ProbeResult result) {
      self->OnResult(std::move(result));
    });
  }

  void Stop() {
    stopped_ = true;
    timer_.cancel();
    probe_.Cancel();
  }

 private:
  void OnResult(ProbeResult result) {
    if (stopped_) {
      return;
    }
    std::optional<Verdict> change;
    if (result.ok) {
      consecutive_failures_ = 0;
      in_start_period_ = false;
      if (reported_healthy_ != true) {
        reported_healthy_ = true;
        change = Verdict{true, result.detail};
      }
    } else if (in_start_period_ && std::chrono::steady_clock::now() < start_period_end_) {
      // Booting guest: not counted.
    } else {
      in_start_period_ = false;
      ++consecutive_failures_;
      if (consecutive_failures_ >= threshold_ && reported_healthy_ != false) {
        reported_healthy_ = false;
        change =
            Verdict{false, result.detail + " (" + std::to_string(consecutive_failures_) +
                               " consecutive failure" + (consecutive_failures_ == 1 ? ")" : "s)")};
      }
    }
    ScheduleNext();
    if (change) {
      // Last: the callback may Stop() (cancelling the timer just set) or destroy the monitor; the
      // probe completion's reference keeps this Run alive until it returns.
      on_change_(std::move(*change));
    }
  }

  void ScheduleNext() {
    timer_.expires_after(interval_);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec && !self->stopped_) {
        self->ProbeNow();
      }
    });
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  ProbeTarget target_;
  std::chrono::milliseconds interval_;
  int threshold_;
  std::chrono::steady_clock::time_point start_period_end_;
  std::function<void(Verdict)> on_change_;
  ProbeCanceller probe_;
  int consecutive_failures_ = 0;
  bool in_start_period_ = true;
  std::optional<bool> reported_healthy_;  // nullopt until the first verdict
  bool stopped_ = false;
};

HealthMonitor::~HealthMonitor() { Stop(); }

Result<void> HealthMonitor::Start(ProbeTarget target, std::chrono::milliseconds interval,
                                  int unhealthy_threshold, std::chrono::milliseconds start_period,
                                  std::function<void(Verdict)> on_change) {
  if (interval.count() <= 0) {
    return InvalidArgument("interval", "must be positive");
  }
  if (unhealthy_threshold < 1) {
    return InvalidArgument("unhealthy_threshold", "must be at least 1");
  }
  if (start_period.count() < 0) {
    return InvalidArgument("start_period", "must not be negative");
  }
  if (target.port == 0) {
    return InvalidArgument("target.port", "must be set");
  }
  if (target.timeout.count() <= 0) {
    return InvalidArgument("target.timeout", "must be positive");
  }
  if (!on_change) {
    return InvalidArgument("on_change", "must be set");
  }
  Stop();
  run_ = std::make_shared<Run>(io_, std::move(target), interval, unhealthy_threshold, start_period,
                               std::move(on_change));
  run_->ProbeNow();
  return {};
}

void HealthMonitor::Stop() {
  if (run_) {
    run_->Stop();
    run_.reset();
  }
}

}  // namespace phoenix::agent::health
