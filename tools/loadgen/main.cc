// phoenix-loadgen: drives loopback HTTP endpoints (a guest's published port, or every healthy
// replica of a supervisor service) with a rate profile and reports achieved rate, errors by kind
// and latency percentiles. Bounded in time (--duration) and requests (--max-requests).
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "tools/loadgen/load_runner.h"
#include "tools/loadgen/service_targets.h"
#include "tools/phoenixctl/cli.h"

namespace phoenix::loadgen {
namespace {

constexpr std::string_view kHelp =
    R"(phoenix-loadgen: send HTTP load to loopback endpoints with a rate profile, and report what came back.

Usage:
  phoenix-loadgen --target URL [--target URL ...] --profile PROFILE [flags]
  phoenix-loadgen --service NAME [--port GUEST_PORT] [--path /PATH] --profile PROFILE [flags]

Targets (loopback only: 127.0.0.0/8, ::1, localhost; anything else is refused):
  --target URL           http://127.0.0.1:PORT/PATH; repeat for several (round-robin)
  --service NAME         every RUNNING, healthy replica of a supervisor service, re-read every
                         second: new replicas get traffic, draining ones stop getting it; with
                         no healthy replica, every RUNNING one (a load balancer's panic mode)
  --port GUEST_PORT      with --service: which published guest port (default: each replica's first)
  --path /PATH           with --service: the request path (default /)
  --supervisor, --token, --token-file, --ca-file, --insecure
                         the supervisor connection, as for phoenixctl

Profile (--profile, phases run one after another, comma-separated):
  step:RATE@SECONDS                    RATE requests/s for SECONDS
  ramp:FROM-TO@SECONDS                 linear from FROM to TO requests/s
  spike:BASE-PEAK@SECONDS:PEAK_SECONDS BASE, with PEAK for PEAK_SECONDS mid-phase
  A phase without "kind:" repeats the previous kind: step:20@10,200@30,0@5

Bounds and behaviour:
  --duration DURATION    stop sending after this long (default: the profile's length; max 1h)
  --max-requests N       stop after starting N requests (default 10000)
  --request-timeout DUR  connect + send + whole reply (default 2s)
  --max-in-flight N      requests open at once before due ones are dropped as errors (default 512)
  -o json                the final report as one JSON object on stdout (progress goes to stderr);
                         "phases" holds sent/ok/failed/errors per profile phase

Output: one progress line per second (wanted and sent rate, OK, errors, p50/p99 of that second,
requests in flight, targets), then the report: achieved rate (OK answers per second), errors by
kind (connect refused, timeout, connection reset, closed before reply, http 5xx, ...), latency
p50/p90/p99/max over the whole run, and with several phases the counts per phase (by the phase a
request was started in). Exit status 0 when every request succeeded, 3 when some
failed, 2 for bad flags, 1 when the service could not be read.

Examples:
  # 50 req/s for 10 s at a guest's published port
  phoenix-loadgen --target http://127.0.0.1:8080/ --profile step:50@10

  # a load step on the quickstart's service: calm, surge, calm (autoscaling demo)
  phoenix-loadgen --service web --supervisor 127.0.0.1:7400 --ca-file STATE/pki/ca.pem \
      --token-file STATE/admin.token --profile step:5@10,150@60,5@60 --max-requests 20000

  # a ramp and a spike
  phoenix-loadgen --target http://127.0.0.1:8080/ --profile ramp:10-300@60,spike:20-500@30:5
)";

constexpr int kExitSomeFailed = 3;

std::string Ms(const std::optional<double>& v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fms", *v);
  return buf;
}

std::string JsonNumber(const std::optional<double>& v) {
  if (!v) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", *v);
  return buf;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int Run(ctl::Context& ctx, std::span<const std::string> args) {
  std::vector<std::string> target_urls;
  std::string service, path = "/", profile_text;
  std::optional<uint64_t> port, max_requests, max_in_flight;
  std::optional<std::chrono::milliseconds> duration, request_timeout;
  ctl::FlagSet flags("phoenix-loadgen");
  flags.Strings("target", &target_urls);
  flags.String("service", &service);
  flags.UInt("port", 65535, &port);
  flags.String("path", &path);
  flags.String("profile", &profile_text);
  flags.Duration("duration", &duration);
  flags.UInt("max-requests", 100'000'000, &max_requests);
  flags.Duration("request-timeout", &request_timeout);
  flags.UInt("max-in-flight", 100'000, &max_in_flight);
  int exit_code = 0;
  auto parsed = ctl::ParseCommandLine(ctx, flags, args, kHelp, &exit_code);
  if (!parsed) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError("phoenix-loadgen",
                          "unexpected argument \"" + parsed->positionals[0] + "\"");
  }
  if (target_urls.empty() == service.empty()) {
    return ctx.UsageError("phoenix-loadgen", "give --target URL (one or more) or --service NAME");
  }
  if (profile_text.empty()) return ctx.UsageError("phoenix-loadgen", "--profile is required");
  auto profile = Profile::Parse(profile_text);
  if (!profile) return ctx.UsageError("phoenix-loadgen", "--profile: " + profile.error().message);
  if (path.empty() || path.front() != '/') {
    return ctx.UsageError("phoenix-loadgen", "--path must start with /");
  }

  RunOptions options;
  options.profile = *profile;
  options.duration = duration.value_or(
      std::chrono::milliseconds(static_cast<int64_t>(std::ceil(profile->seconds() * 1000))));
  if (options.duration > std::chrono::hours(1) || options.duration.count() <= 0) {
    return ctx.UsageError("phoenix-loadgen", "--duration must be between 1ms and 1h");
  }
  options.max_requests = max_requests.value_or(10000);
  if (options.max_requests == 0)
    return ctx.UsageError("phoenix-loadgen", "--max-requests must be > 0");
  options.request_timeout = request_timeout.value_or(std::chrono::seconds(2));
  options.max_in_flight = max_in_flight.value_or(512);

  std::vector<Target> targets;
  for (const std::string& url : target_urls) {
    auto t = ParseTarget(url);
    if (!t) return ctx.UsageError("phoenix-loadgen", t.error().message);
    targets.push_back(*t);
  }

  boost::asio::io_context io;
  std::ostream& progress = ctx.json() ? ctx.err() : ctx.out();
  LoadRunner runner(io, options, [&](const SecondReport& s) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "t=%3ds want=%.0f/s sent=%llu ok=%llu err=%llu p50=%s p99=%s inflight=%zu "
                  "targets=%zu\n",
                  s.second, s.wanted_rate, static_cast<unsigned long long>(s.sent),
                  static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.errors),
                  Ms(s.p50_ms).c_str(), Ms(s.p99_ms).c_str(), s.in_flight, s.targets);
    progress << line << std::flush;
  });

  // Service mode: a thread re-reads the endpoints every second (gRPC blocks; the loop must not).
  std::atomic<bool> stop_refresh{false};
  std::mutex mu;
  std::condition_variable cv;
  std::thread refresher;
  if (!service.empty()) {
    auto* stub = ctl::DialSupervisor(ctx, "phoenix-loadgen", &exit_code);
    if (stub == nullptr) return exit_code;
    auto initial = ReadServiceTargets(ctx, *stub, service, port, path);
    if (!initial) return ctx.Failure(initial.error(), ctl::Peer::kSupervisor);
    for (const std::string& skipped : initial->refused) {
      ctx.err() << "warning: not sending to " << skipped << " (not a loopback address)\n";
    }
    targets = initial->targets;
    refresher = std::thread([&, stub, all_unhealthy = false]() mutable {
      std::string last_error;
      while (!stop_refresh) {
        {
          std::unique_lock lock(mu);
          cv.wait_for(lock, std::chrono::seconds(1), [&] { return stop_refresh.load(); });
        }
        if (stop_refresh) break;
        auto read = ReadServiceTargets(ctx, *stub, service, port, path);
        if (!read) {
          // Keep the last known endpoints: a supervisor hiccup is not a reason to stop the load.
          if (read.error().message != last_error) {
            progress << "warning: reading service " << service << ": " << read.error().ToString()
                     << "; keeping the last endpoints\n";
            last_error = read.error().message;
          }
          continue;
        }
        last_error.clear();
        if (read->all_unhealthy != all_unhealthy && !read->targets.empty()) {
          progress << (read->all_unhealthy ? "note: no replica of " + service +
                                                 " is healthy; sending to the running ones\n"
                                           : "note: " + service + " has healthy replicas again\n");
        }
        if (!read->targets.empty()) all_unhealthy = read->all_unhealthy;
        runner.SetTargets(read->targets);
      }
    });
  }
  runner.SetTargets(targets);
  progress << "phoenix-loadgen: " << profile->Describe() << "; at most " << options.max_requests
           << " requests in " << options.duration.count() / 1000.0 << " s; "
           << (service.empty() ? std::to_string(targets.size()) + " target(s)"
                               : "service " + service + ", " + std::to_string(targets.size()) +
                                     " endpoint(s) now")
           << "\n";

  Report report;
  bool finished = false;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  bool interrupted = false;
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) {
      interrupted = true;
      io.stop();
    }
  });
  runner.Start([&](const Report& r) {
    report = r;
    finished = true;
    signals.cancel();  // the last work: io.run() returns
  });
  io.run();
  stop_refresh = true;
  cv.notify_all();
  if (refresher.joinable()) refresher.join();
  io.restart();
  io.poll();  // target updates the refresher posted last
  if (interrupted || !finished) {
    ctx.err() << "interrupted\n";
    return 130;
  }

  auto json_errors = [](const RunTotals& totals) {
    std::string errors;
    for (const auto& [kind, count] : totals.errors) {
      errors += (errors.empty() ? "" : ",") + JsonString(kind) + ":" + std::to_string(count);
    }
    return "{" + errors + "}";
  };
  if (ctx.json()) {
    std::string phases;
    for (const RunTotals& phase : report.phases) {
      phases += std::string(phases.empty() ? "" : ",") + "{\"sent\":" + std::to_string(phase.sent) +
                ",\"ok\":" + std::to_string(phase.ok) +
                ",\"failed\":" + std::to_string(phase.error_count()) +
                ",\"errors\":" + json_errors(phase) + "}";
    }
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.3f", report.achieved_rate);
    ctx.out() << "{\"seconds\":" << JsonNumber(report.seconds) << ",\"sent\":" << report.totals.sent
              << ",\"ok\":" << report.totals.ok << ",\"failed\":" << report.totals.error_count()
              << ",\"achieved_rate\":" << rate << ",\"errors\":" << json_errors(report.totals)
              << ",\"latency_ms\":{\"p50\":" << JsonNumber(report.p50_ms)
              << ",\"p90\":" << JsonNumber(report.p90_ms)
              << ",\"p99\":" << JsonNumber(report.p99_ms)
              << ",\"max\":" << JsonNumber(report.max_ms) << "}"
              << ",\"hit_max_requests\":" << (report.hit_max_requests ? "true" : "false")
              << ",\"phases\":[" << phases << "]}\n";
  } else {
    char line[256];
    std::snprintf(line, sizeof line,
                  "\nsent %llu requests in %.1f s: %llu ok, %llu failed; achieved %.1f ok/s%s\n",
                  static_cast<unsigned long long>(report.totals.sent), report.seconds,
                  static_cast<unsigned long long>(report.totals.ok),
                  static_cast<unsigned long long>(report.totals.error_count()),
                  report.achieved_rate,
                  report.hit_max_requests ? " (stopped at --max-requests)" : "");
    ctx.out() << line;
    for (const auto& [kind, count] : report.totals.errors) {
      ctx.out() << "  error " << kind << ": " << count << "\n";
    }
    if (report.phases.size() > 1) {
      for (size_t i = 0; i < report.phases.size(); ++i) {
        const RunTotals& phase = report.phases[i];
        ctx.out() << "  phase " << i + 1 << ": " << phase.sent << " sent, " << phase.ok << " ok, "
                  << phase.error_count() << " failed\n";
      }
    }
    ctx.out() << "latency p50 " << Ms(report.p50_ms) << "  p90 " << Ms(report.p90_ms) << "  p99 "
              << Ms(report.p99_ms) << "  max " << Ms(report.max_ms) << "\n";
  }
  return report.totals.error_count() == 0 ? 0 : kExitSomeFailed;
}

}  // namespace
}  // namespace phoenix::loadgen

int main(int argc, char** argv) {
  auto env = [](std::string_view name) {
    const char* value = std::getenv(std::string(name).c_str());
    return value == nullptr ? std::string() : std::string(value);
  };
  phoenix::ctl::Context ctx(
      std::cout, std::cerr, env(phoenix::ctl::kEndpointEnv),
      phoenix::ctl::SupervisorEnv{env(phoenix::ctl::kSupervisorEnv), env(phoenix::ctl::kTokenEnv),
                                  env(phoenix::ctl::kCaEnv)});
  std::vector<std::string> args(argv + 1, argv + argc);
  return phoenix::loadgen::Run(ctx, args);
}
