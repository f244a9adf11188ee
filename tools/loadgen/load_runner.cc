#include "tools/loadgen/load_runner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace phoenix::loadgen {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kTick = std::chrono::milliseconds(5);
constexpr size_t kMaxBodyBytes = 8 << 20;
constexpr size_t kMaxIdlePerTarget = 64;

std::string ErrorKind(const error_code& ec, bool connecting) {
  if (ec == asio::error::connection_refused) return "connect refused";
  if (ec == asio::error::operation_aborted) return connecting ? "connect timeout" : "timeout";
  if (ec == asio::error::connection_reset) return "connection reset";
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == http::error::partial_message) {
    return "closed before reply";
  }
  if (ec == http::error::body_limit) return "reply too large";
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return "bad http reply";
  }
  return (connecting ? "connect: " : "") + ec.message();
}

}  // namespace

class LoadRunner::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, RunOptions options, std::function<void(const SecondReport&)> cb)
      : io_(io),
        options_(std::move(options)),
        on_second_(std::move(cb)),
        tick_(io),
        second_timer_(io),
        phase_totals_(std::max<size_t>(1, options_.profile.phases().size())) {}

  void SetTargets(std::vector<Target> targets) {
    targets_ = std::move(targets);
    // Idle connections to targets that left are closed: a draining replica gets nothing new.
    for (auto it = idle_.begin(); it != idle_.end();) {
      bool kept = std::any_of(targets_.begin(), targets_.end(),
                              [&](const Target& t) { return t.ToString() == it->first; });
      it = kept ? std::next(it) : idle_.erase(it);
    }
  }

  void Start(std::function<void(const Report&)> done) {
    done_ = std::move(done);
    start_ = SteadyClock::now();
    send_seconds_ = std::min(options_.profile.seconds(),
                             std::chrono::duration<double>(options_.duration).count());
    Tick();
    ScheduleSecond();
  }

  asio::io_context& io() { return io_; }

  void Stop() {
    stopped_ = true;
    tick_.cancel();
    second_timer_.cancel();
    idle_.clear();
  }

 private:
  struct Connection {
    explicit Connection(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    boost::beast::flat_buffer buffer;
  };

  struct Request {
    Request(asio::io_context& io, Target t) : target(std::move(t)), timer(io) {}
    Target target;
    size_t phase = 0;  // the profile phase it was started in
    std::shared_ptr<Connection> conn;
    bool reused = false;
    bool retried = false;
    bool finished = false;
    SteadyClock::time_point started;
    asio::steady_timer timer;
    http::request<http::empty_body> req;
    std::optional<http::response_parser<http::string_body>> parser;
  };

  double Elapsed() const {
    return std::chrono::duration<double>(SteadyClock::now() - start_).count();
  }

  void Tick() {
    if (stopped_) return;
    const double t = Elapsed();
    // Requests due by now, up to the end of the sending window (the last one included).
    const double due = std::floor(options_.profile.RequestsBy(std::min(t, send_seconds_)) + 1e-9);
    while (static_cast<double>(started_) < due && started_ < options_.max_requests) Launch();
    if (started_ >= options_.max_requests && static_cast<double>(started_) < due) hit_max_ = true;
    if (started_ >= options_.max_requests && !hit_max_ &&
        options_.profile.RequestsBy(send_seconds_) > static_cast<double>(started_) + 1e-9) {
      hit_max_ = true;
    }
    if (t >= send_seconds_ || started_ >= options_.max_requests) {
      if (!send_end_) send_end_ = SteadyClock::now();
      if (in_flight_ == 0) return Finish();
    }
    tick_.expires_after(kTick);
    tick_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->Tick();
    });
  }

  // The profile phase request number `n` (1-based) belongs to: the first whose end has that many
  // requests due. By count, not by the clock, so a request launched a tick late stays in its phase.
  size_t PhaseOfRequest(uint64_t n) const {
    const auto& phases = options_.profile.phases();
    double end = 0;
    for (size_t i = 0; i < phases.size(); ++i) {
      end += phases[i].seconds;
      if (options_.profile.RequestsBy(end) + 1e-9 >= static_cast<double>(n)) return i;
    }
    return phases.empty() ? 0 : phases.size() - 1;
  }

  void Launch() {
    ++started_;
    const size_t phase = PhaseOfRequest(started_);
    ++totals_.sent;
    ++second_.sent;
    ++phase_totals_[phase].sent;
    if (targets_.empty()) return Fail("no target (service has no healthy endpoint)", phase);
    if (in_flight_ >= options_.max_in_flight) return Fail("dropped (in-flight limit)", phase);
    const Target& target = targets_[next_target_++ % targets_.size()];
    auto r = std::make_shared<Request>(io_, target);
    r->phase = phase;
    r->started = SteadyClock::now();
    r->req.method(http::verb::get);
    r->req.target(target.path);
    r->req.version(11);
    r->req.set(http::field::host, target.host + ":" + std::to_string(target.port));
    r->req.set(http::field::user_agent, "phoenix-loadgen");
    r->req.keep_alive(true);
    ++in_flight_;
    r->timer.expires_after(options_.request_timeout);
    r->timer.async_wait([self = shared_from_this(), r](const error_code& ec) {
      if (ec || r->finished) return;
      error_code ignored;
      if (r->conn) r->conn->socket.close(ignored);  // completes the pending op with aborted
      self->Done(r, "timeout");
    });
    Send(r);
  }

  void Send(const std::shared_ptr<Request>& r) {
    auto& idle = idle_[r->target.ToString()];
    if (!idle.empty()) {
      r->conn = std::move(idle.back());
      idle.pop_back();
      r->reused = true;
      return Write(r);
    }
    r->reused = false;
    r->conn = std::make_shared<Connection>(io_);
    error_code ec;
    tcp::endpoint endpoint(asio::ip::make_address(r->target.host, ec), r->target.port);
    if (ec) return Done(r, "bad target address");
    r->conn->socket.async_connect(endpoint,
                                  [self = shared_from_this(), r](const error_code& connect_ec) {
                                    if (r->finished) return;
                                    if (connect_ec) {
                                      return self->Done(r, ErrorKind(connect_ec, true));
                                    }
                                    error_code ignored;
                                    r->conn->socket.set_option(tcp::no_delay(true), ignored);
                                    self->Write(r);
                                  });
  }

  void Write(const std::shared_ptr<Request>& r) {
    http::async_write(r->conn->socket, r->req,
                      [self = shared_from_this(), r](const error_code& ec, size_t) {
                        if (r->finished) return;
                        if (ec) return self->RetryOrFail(r, ec);
                        self->Read(r);
                      });
  }

  void Read(const std::shared_ptr<Request>& r) {
    r->parser.emplace();
    r->parser->body_limit(kMaxBodyBytes);
    http::async_read(r->conn->socket, r->conn->buffer, *r->parser,
                     [self = shared_from_this(), r](const error_code& ec, size_t) {
                       if (r->finished) return;
                       if (ec) return self->RetryOrFail(r, ec);
                       self->OnReply(r);
                     });
  }

  // A reused keep-alive connection the server had already closed: one fresh attempt.
  void RetryOrFail(const std::shared_ptr<Request>& r, const error_code& ec) {
    const bool stale = r->reused && !r->retried && (!r->parser || !r->parser->got_some()) &&
                       (ec == asio::error::eof || ec == http::error::end_of_stream ||
                        ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
    if (stale) {
      ++totals_.stale_retries;
      r->retried = true;
      r->conn.reset();
      r->parser.reset();
      return Send(r);
    }
    Done(r, ErrorKind(ec, false));
  }

  void OnReply(const std::shared_ptr<Request>& r) {
    const auto& res = r->parser->get();
    const unsigned status = res.result_int();
    // The parser knows what the message does not: a reply delimited by EOF ends the connection.
    const bool keep = r->parser->keep_alive();
    std::shared_ptr<Connection> conn = r->conn;
    // An HTTP error status is an answer: the connection stays usable.
    Done(r, status >= 400 ? "http " + std::to_string(status) : std::string(),
         /*connection_broken=*/false);
    if (keep && conn && !stopped_) {
      const bool still_target = std::any_of(targets_.begin(), targets_.end(),
                                            [&](const Target& t) { return t == r->target; });
      auto& idle = idle_[r->target.ToString()];
      if (still_target && idle.size() < kMaxIdlePerTarget) idle.push_back(std::move(conn));
    }
  }

  void Done(const std::shared_ptr<Request>& r, const std::string& error,
            bool connection_broken = true) {
    if (r->finished) return;
    r->finished = true;
    r->timer.cancel();
    --in_flight_;
    if (error.empty()) {
      const double ms =
          std::chrono::duration<double, std::milli>(SteadyClock::now() - r->started).count();
      ++totals_.ok;
      ++second_.ok;
      ++phase_totals_[r->phase].ok;
      all_.Add(ms);
      window_.Add(ms);
    } else {
      if (connection_broken && r->conn) {
        error_code ignored;
        r->conn->socket.close(ignored);
      }
      Fail(error, r->phase);
    }
    last_answer_ = SteadyClock::now();
  }

  void Fail(const std::string& kind, size_t phase) {
    ++totals_.errors[kind];
    ++second_.errors;
    ++phase_totals_[phase].errors[kind];
  }

  void ScheduleSecond() {
    second_timer_.expires_at(start_ + std::chrono::seconds(seconds_reported_ + 1));
    second_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec) return;
      self->ReportSecond();
      self->ScheduleSecond();
    });
  }

  void ReportSecond() {
    ++seconds_reported_;
    second_.second = seconds_reported_;
    second_.wanted_rate =
        options_.profile.RateAt(std::min<double>(seconds_reported_ - 1e-9, send_seconds_ - 1e-9));
    if (static_cast<double>(seconds_reported_) > send_seconds_ + 1e-9) second_.wanted_rate = 0;
    second_.p50_ms = window_.Percentile(50);
    second_.p99_ms = window_.Percentile(99);
    second_.in_flight = in_flight_;
    second_.targets = targets_.size();
    if (on_second_) on_second_(second_);
    second_ = SecondReport{};
    window_.Clear();
  }

  void Finish() {
    if (stopped_) return;
    Report report;
    const auto end = std::max(last_answer_.value_or(start_), send_end_.value_or(start_));
    report.seconds = std::chrono::duration<double>(end - start_).count();
    const double send_s = std::chrono::duration<double>(send_end_.value_or(end) - start_).count();
    report.totals = totals_;
    report.phases = phase_totals_;
    report.achieved_rate = send_s > 0 ? static_cast<double>(totals_.ok) / send_s : 0;
    report.p50_ms = all_.Percentile(50);
    report.p90_ms = all_.Percentile(90);
    report.p99_ms = all_.Percentile(99);
    report.max_ms = all_.Max();
    report.hit_max_requests = hit_max_;
    Stop();
    if (done_) done_(report);
  }

  asio::io_context& io_;
  RunOptions options_;
  std::function<void(const SecondReport&)> on_second_;
  std::function<void(const Report&)> done_;
  asio::steady_timer tick_;
  asio::steady_timer second_timer_;
  std::vector<Target> targets_;
  size_t next_target_ = 0;
  std::map<std::string, std::vector<std::shared_ptr<Connection>>> idle_;
  SteadyClock::time_point start_;
  double send_seconds_ = 0;
  std::optional<SteadyClock::time_point> send_end_, last_answer_;
  uint64_t started_ = 0;
  size_t in_flight_ = 0;
  bool hit_max_ = false;
  bool stopped_ = false;
  RunTotals totals_;
  std::vector<RunTotals> phase_totals_;  // one per profile phase (at least one)
  LatencyRecorder all_, window_;
  SecondReport second_;
  int seconds_reported_ = 0;
};

LoadRunner::LoadRunner(asio::io_context& io, RunOptions options,
                       std::function<void(const SecondReport&)> on_second)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(on_second))) {}

LoadRunner::~LoadRunner() {
  // Completions hold their own references; stopping makes them end without new work.
  impl_->Stop();
}

void LoadRunner::SetTargets(std::vector<Target> targets) {
  asio::post(impl_->io(), [impl = impl_, targets = std::move(targets)]() mutable {
    impl->SetTargets(std::move(targets));
  });
}

void LoadRunner::Start(std::function<void(const Report&)> done) { impl_->Start(std::move(done)); }

}  // namespace phoenix::loadgen
