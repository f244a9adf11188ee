#include "tools/phoenixctl/bench_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include <google/protobuf/struct.pb.h>

#include "tools/phoenixctl/events_command.h"

namespace phoenix::ctl {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kGroupHelp = R"(phoenixctl bench: measurements against a live agent.

Usage:
  phoenixctl bench restart [flags]

Commands:
  restart   kill a guest N times and measure kill -> running and kill -> healthy (see
            'phoenixctl bench restart --help')
)";

constexpr std::string_view kRestartHelp =
    R"(phoenixctl bench restart: measure how fast the agent brings a killed guest back.

For each of --count kills it sends KillGuest (SIGKILL to the hypervisor or container init) and
times, on this machine's steady clock, the kill until the agent reports the guest RUNNING again
and until it reports it HEALTHY again (from the agent's event stream, watched before the kill).

Without --guest it creates its own guests of --image with an HTTP health check (GET /health on
guest port 80, every 200ms), one per boot mode: bench-<runtime>-cold and bench-<runtime>-snapshot.
It waits until each is healthy, runs the kills, and deletes the guests again (also after a failure
or timeout). With --guest it measures an existing running guest and leaves it in place.

Usage:
  phoenixctl bench restart [--guest NAME | --image IMG] [flags]

Flags:
  --guest NAME      measure this existing guest instead of creating guests
  --image IMG       image of the created guests (default demo)
  --runtime vm|microvm|container
                    runtime of the created guests (default vm)
  --boot cold|snapshot|both
                    boot modes to measure, one guest each (default both)
  --count N         kills per guest (default 5)
  --timeout DURATION
                    bound of every wait: first healthy, each kill -> running -> healthy
                    (default 300s). Requests use --rpc-timeout (default 30s).
  -o json           the report as one JSON document (with raw samples); progress stays on stderr

Output: per mode the number of kills and p50, p90 and max of kill->running and kill->healthy in
milliseconds. Progress lines ("kill 3/10: running after 812 ms, healthy after 1630 ms") go to stderr.

Examples:
  # cold boot vs golden snapshot for libvirt VMs, 10 kills each
  phoenixctl bench restart --runtime vm --count 10
  # micro-VMs restored from the snapshot only, as JSON
  phoenixctl bench restart --runtime microvm --boot snapshot -o json
  # an existing guest (keeps it)
  phoenixctl bench restart --guest web --count 3
)";

constexpr uint32_t kHealthIntervalMs = 200;

double Round1(double value) { return std::round(value * 10) / 10; }

double MillisSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// What the run needs besides the flags: the context, the wait bound, and the event high-water mark.
class RestartBench {
 public:
  RestartBench(Context& ctx, std::chrono::milliseconds wait) : ctx_(ctx), wait_(wait) {}

  // Measures `count` kills of `guest`, whose events `feed` already watches.
  Result<void> MeasureKills(EventFeed& feed, ModeResult& result, uint64_t count) {
    for (uint64_t i = 1; i <= count; ++i) {
      DrainQueued(feed);
      const uint64_t before_kill = last_sequence_;
      v1::KillGuestRequest request;
      request.set_name(result.guest);
      v1::KillGuestResponse response;
      const Clock::time_point kill_start = Clock::now();
      auto context = ctx_.UnaryContext();
      grpc::Status status = ctx_.Stub().KillGuest(context.get(), request, &response);
      if (!status.ok()) {
        return std::unexpected(FromGrpcStatus(status).Wrap("kill " + std::to_string(i)));
      }
      const Clock::time_point deadline = kill_start + wait_;
      std::optional<double> running_ms;
      std::optional<double> healthy_ms;
      while (!running_ms || (result.has_health_check && !healthy_ms)) {
        auto event = feed.Next(deadline);
        if (!event) {
          if (event.error().code == ErrorCode::kDeadlineExceeded) {
            return MakeError(ErrorCode::kDeadlineExceeded,
                             result.guest + " was not " + (running_ms ? "healthy" : "running") +
                                 " again within " + FormatMillis(wait_) + " after kill " +
                                 std::to_string(i) + " (raise --timeout?)");
          }
          return std::unexpected(event.error().Wrap("watching " + result.guest));
        }
        const Clock::time_point seen = Clock::now();
        last_sequence_ = std::max(last_sequence_, event->sequence());
        if (event->sequence() <= before_kill) continue;  // from before this kill
        switch (event->type()) {
          case v1::EVENT_TYPE_GUEST_RUNNING:
            if (!running_ms) running_ms = MillisSince(kill_start, seen);
            break;
          case v1::EVENT_TYPE_GUEST_HEALTHY:
            // Only the health of the new instance counts.
            if (running_ms && !healthy_ms) healthy_ms = MillisSince(kill_start, seen);
            break;
          case v1::EVENT_TYPE_GUEST_FAILED:
          case v1::EVENT_TYPE_GUEST_STOPPED:
          case v1::EVENT_TYPE_GUEST_DELETED:
            return FailedPrecondition(result.guest + " is " + EventTypeName(event->type()) +
                                      " after kill " + std::to_string(i) + ": " + event->message());
          default:
            break;
        }
      }
      result.running_ms.push_back(Round1(*running_ms));
      ctx_.err() << "kill " << i << "/" << count << ": running after " << std::llround(*running_ms)
                 << " ms";
      if (healthy_ms) {
        result.healthy_ms.push_back(Round1(*healthy_ms));
        ctx_.err() << ", healthy after " << std::llround(*healthy_ms) << " ms";
      }
      ctx_.err() << "\n";
      ctx_.err().flush();
    }
    return {};
  }

  // Waits for the guest's first HEALTHY (or RUNNING without health check) event.
  Result<double> WaitReady(EventFeed& feed, const std::string& guest, bool has_health_check) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + wait_;
    const v1::EventType wanted =
        has_health_check ? v1::EVENT_TYPE_GUEST_HEALTHY : v1::EVENT_TYPE_GUEST_RUNNING;
    while (true) {
      auto event = feed.Next(deadline);
      if (!event) {
        if (event.error().code == ErrorCode::kDeadlineExceeded) {
          return MakeError(ErrorCode::kDeadlineExceeded,
                           guest + " was not " + EventTypeName(wanted) + " within " +
                               FormatMillis(wait_) + " (raise --timeout?)");
        }
        return std::unexpected(event.error().Wrap("watching " + guest));
      }
      last_sequence_ = std::max(last_sequence_, event->sequence());
      if (event->type() == wanted) return MillisSince(start, Clock::now());
      if (event->type() == v1::EVENT_TYPE_GUEST_FAILED ||
          event->type() == v1::EVENT_TYPE_GUEST_DELETED) {
        return FailedPrecondition(guest + " is " + EventTypeName(event->type()) + ": " +
                                  event->message());
      }
    }
  }

 private:
  // Events already queued before a kill belong to the previous round.
  void DrainQueued(EventFeed& feed) {
    while (auto event = feed.Next(Clock::now())) {
      last_sequence_ = std::max(last_sequence_, event->sequence());
    }
  }

  Context& ctx_;
  std::chrono::milliseconds wait_;
  uint64_t last_sequence_ = 0;
};

v1::WatchEventsRequest WatchGuest(const std::string& guest) {
  v1::WatchEventsRequest request;
  request.set_from_sequence(0);  // only new events
  request.set_guest(guest);
  return request;
}

// Creates one bench guest, waits until healthy, kills it `count` times, always deletes it.
Result<ModeResult> BenchOwnGuest(Context& ctx, RestartBench& bench, const std::string& image,
                                 v1::Runtime runtime, v1::BootMode mode, uint64_t count) {
  ModeResult result;
  result.mode = BootModeName(mode);
  result.guest = "bench-" + RuntimeName(runtime) + "-" + result.mode;

  v1::RunGuestRequest request;
  v1::GuestSpec& spec = *request.mutable_spec();
  spec.set_name(result.guest);
  spec.set_image(image);
  spec.set_runtime(runtime);
  spec.set_boot_mode(mode);
  v1::PortMapping& port = *spec.add_ports();
  port.set_guest_port(80);
  port.set_host_ip("127.0.0.1");  // host port 0: the agent picks one
  v1::HealthCheck& health = *spec.mutable_health();
  health.mutable_http()->set_port(80);
  health.mutable_http()->set_path("/health");
  health.set_interval_ms(kHealthIntervalMs);
  health.set_timeout_ms(kHealthIntervalMs);
  spec.mutable_restart()->set_policy(v1::RESTART_POLICY_ALWAYS);

  // Watch before creating, so no event of the guest's life is missed.
  EventFeed feed(ctx, WatchGuest(result.guest));
  ctx.err() << result.guest << ": creating (" << RuntimeName(runtime) << ", image " << image
            << ", boot " << result.mode << ")\n";
  v1::Guest created;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().RunGuest(context.get(), request, &created);
  if (!status.ok()) {
    Error error = FromGrpcStatus(status);
    if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      error.message += " (left over from an earlier bench? remove it with 'phoenixctl guest rm " +
                       result.guest + "')";
    }
    return std::unexpected(error.Wrap("creating " + result.guest));
  }

  auto outcome = [&]() -> Result<void> {
    auto ready = bench.WaitReady(feed, result.guest, /*has_health_check=*/true);
    if (!ready) return std::unexpected(ready.error());
    ctx.err() << result.guest << ": healthy " << std::llround(*ready) << " ms after creation\n";
    return bench.MeasureKills(feed, result, count);
  }();

  v1::DeleteGuestRequest remove;
  remove.set_name(result.guest);
  v1::DeleteGuestResponse removed;
  auto remove_context = ctx.UnaryContext();
  grpc::Status remove_status = ctx.Stub().DeleteGuest(remove_context.get(), remove, &removed);
  if (!remove_status.ok()) {
    ctx.err() << "warning: could not delete " << result.guest << ": "
              << remove_status.error_message() << " (" << StatusCodeName(remove_status.error_code())
              << "); remove it with 'phoenixctl guest rm " << result.guest << "'\n";
  }
  if (!outcome) return std::unexpected(outcome.error());
  return result;
}

Result<ModeResult> BenchExistingGuest(Context& ctx, RestartBench& bench, const std::string& name,
                                      uint64_t count, std::string* runtime) {
  EventFeed feed(ctx, WatchGuest(name));
  v1::GetGuestRequest request;
  request.set_name(name);
  v1::Guest guest;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().GetGuest(context.get(), request, &guest);
  if (!status.ok()) return std::unexpected(FromGrpcStatus(status));
  if (guest.state() != v1::GUEST_STATE_RUNNING) {
    return FailedPrecondition("guest " + name + " is " + GuestStateName(guest.state()) +
                              "; bench restart needs it running");
  }
  ModeResult result;
  result.guest = name;
  result.mode = BootModeName(guest.spec().boot_mode());
  result.has_health_check = guest.spec().has_health() &&
                            guest.spec().health().probe_case() != v1::HealthCheck::PROBE_NOT_SET;
  *runtime = RuntimeName(guest.spec().runtime());
  if (result.has_health_check && !guest.healthy()) {
    ctx.err() << name << ": waiting until healthy\n";
    auto ready = bench.WaitReady(feed, name, /*has_health_check=*/true);
    if (!ready) return std::unexpected(ready.error());
  }
  if (!result.has_health_check) {
    ctx.err() << name << ": no health check; measuring kill -> running only\n";
  }
  auto measured = bench.MeasureKills(feed, result, count);
  if (!measured) return std::unexpected(measured.error());
  return result;
}

int BenchRestart(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "bench restart";
  std::string guest;
  std::string image;
  std::string runtime_text;
  std::string boot = "both";
  std::optional<uint64_t> count;
  std::optional<std::chrono::milliseconds> wait;
  FlagSet flags{std::string(kCommand)};
  flags.String("guest", &guest);
  flags.String("image", &image);
  flags.String("runtime", &runtime_text);
  flags.String("boot", &boot);
  flags.UInt("count", 1000, &count);
  flags.Duration("timeout", &wait);
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kRestartHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "bench restart", &exit_code) == nullptr) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError(kCommand, "takes no arguments (got '" + parsed->positionals[0] +
                                        "'); use --guest NAME for an existing guest");
  }
  if (count == 0u) return ctx.UsageError(kCommand, "--count must be at least 1");
  if (wait && wait->count() == 0) return ctx.UsageError(kCommand, "--timeout must be positive");
  if (!guest.empty() &&
      (flags.WasSet("image") || flags.WasSet("runtime") || flags.WasSet("boot"))) {
    return ctx.UsageError(kCommand,
                          "--guest measures an existing guest; --image, --runtime and --boot only "
                          "apply to the guests bench creates");
  }
  v1::Runtime runtime = v1::RUNTIME_VM;
  if (!runtime_text.empty()) {
    auto parsed_runtime = ParseRuntime(runtime_text);
    if (!parsed_runtime) {
      return ctx.UsageError(kCommand,
                            "--runtime " + runtime_text + ": " + parsed_runtime.error().message);
    }
    runtime = *parsed_runtime;
  }
  std::vector<v1::BootMode> modes;
  if (boot == "both") {
    modes = {v1::BOOT_MODE_COLD, v1::BOOT_MODE_SNAPSHOT};
  } else if (boot == "cold") {
    modes = {v1::BOOT_MODE_COLD};
  } else if (boot == "snapshot") {
    modes = {v1::BOOT_MODE_SNAPSHOT};
  } else {
    return ctx.UsageError(kCommand, "--boot " + boot + ": expects cold, snapshot or both");
  }

  InstallInterruptHandler();  // Ctrl-C ends the current wait, and the guests are still deleted
  RestartBench bench(ctx, wait.value_or(std::chrono::seconds(300)));
  BenchReport report;
  if (!guest.empty()) {
    auto result = BenchExistingGuest(ctx, bench, guest, count.value_or(5), &report.runtime);
    if (!result) return ctx.Failure(result.error());
    report.results.push_back(std::move(*result));
  } else {
    report.image = image.empty() ? "demo" : image;
    report.runtime = RuntimeName(runtime);
    for (v1::BootMode mode : modes) {
      auto result = BenchOwnGuest(ctx, bench, report.image, runtime, mode, count.value_or(5));
      if (!result) return ctx.Failure(result.error());
      report.results.push_back(std::move(*result));
    }
  }
  if (ctx.json()) {
    auto json = BenchJson(report);
    if (!json) return ctx.Failure(json.error());
    ctx.out() << *json << "\n";
  } else {
    RenderBenchTable(report, ctx.out());
  }
  return kExitOk;
}

std::string Millis(std::optional<double> value) {
  return value ? std::to_string(std::llround(*value)) : "-";
}

google::protobuf::Value Number(double value) {
  google::protobuf::Value v;
  v.set_number_value(value);
  return v;
}

google::protobuf::Value Text(std::string value) {
  google::protobuf::Value v;
  v.set_string_value(std::move(value));
  return v;
}

google::protobuf::Value SummaryValue(std::span<const double> samples) {
  google::protobuf::Value value;
  auto summary = Summarize(samples);
  if (!summary) {
    value.set_null_value(google::protobuf::NULL_VALUE);
    return value;
  }
  auto& fields = *value.mutable_struct_value()->mutable_fields();
  fields["p50"] = Number(summary->p50_ms);
  fields["p90"] = Number(summary->p90_ms);
  fields["max"] = Number(summary->max_ms);
  auto& list = *fields["samples"].mutable_list_value();
  for (double sample : samples) *list.add_values() = Number(sample);
  return value;
}

}  // namespace

int RunBenchGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"restart", BenchRestart}};
  return DispatchGroup(ctx, "bench", kGroupHelp, kCommands, args);
}

std::optional<double> Percentile(std::span<const double> samples, double percent) {
  if (samples.empty()) return std::nullopt;
  std::vector<double> sorted(samples.begin(), samples.end());
  std::ranges::sort(sorted);
  percent = std::clamp(percent, 0.0, 100.0);
  auto rank = static_cast<size_t>(std::ceil(percent / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::optional<LatencySummary> Summarize(std::span<const double> samples_ms) {
  if (samples_ms.empty()) return std::nullopt;
  LatencySummary summary;
  summary.count = samples_ms.size();
  summary.p50_ms = *Percentile(samples_ms, 50);
  summary.p90_ms = *Percentile(samples_ms, 90);
  summary.max_ms = *Percentile(samples_ms, 100);
  return summary;
}

void RenderBenchTable(const BenchReport& report, std::ostream& out) {
  Table table({"MODE", "GUEST", "KILLS", "RUNNING_P50_MS", "RUNNING_P90_MS", "RUNNING_MAX_MS",
               "HEALTHY_P50_MS", "HEALTHY_P90_MS", "HEALTHY_MAX_MS"});
  for (const ModeResult& result : report.results) {
    auto running = Summarize(result.running_ms);
    auto healthy = Summarize(result.healthy_ms);
    auto field = [](const std::optional<LatencySummary>& s, double LatencySummary::*member) {
      return Millis(s ? std::optional<double>((*s).*member) : std::nullopt);
    };
    table.AddRow({result.mode, result.guest, std::to_string(result.running_ms.size()),
                  field(running, &LatencySummary::p50_ms), field(running, &LatencySummary::p90_ms),
                  field(running, &LatencySummary::max_ms), field(healthy, &LatencySummary::p50_ms),
                  field(healthy, &LatencySummary::p90_ms),
                  field(healthy, &LatencySummary::max_ms)});
  }
  table.Render(out);
}

Result<std::string> BenchJson(const BenchReport& report) {
  google::protobuf::Struct root;
  auto& fields = *root.mutable_fields();
  if (!report.image.empty()) fields["image"] = Text(report.image);
  fields["runtime"] = Text(report.runtime);
  auto& results = *fields["results"].mutable_list_value();
  for (const ModeResult& result : report.results) {
    google::protobuf::Value entry;
    auto& entry_fields = *entry.mutable_struct_value()->mutable_fields();
    entry_fields["mode"] = Text(result.mode);
    entry_fields["guest"] = Text(result.guest);
    entry_fields["kills"] = Number(static_cast<double>(result.running_ms.size()));
    entry_fields["kill_to_running_ms"] = SummaryValue(result.running_ms);
    entry_fields["kill_to_healthy_ms"] = SummaryValue(result.healthy_ms);
    *results.add_values() = std::move(entry);
  }
  return ToJson(root, /*multiline=*/true);
}

}  // namespace phoenix::ctl
