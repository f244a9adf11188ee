// phoenix-fleetsim: opens N simulated agent links to a loopback supervisor and reports what the
// fan-in costs it (see options.h for the flags, fleet.h for what an agent does).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "proto/support/logging.h"
#include "proto/support/tls.h"
#include "tools/fleetsim/enroll.h"
#include "tools/fleetsim/fleet.h"
#include "tools/fleetsim/options.h"

namespace phoenix::fleetsim {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    std::perror("getrlimit(RLIMIT_NOFILE)");
    return;
  }
  if (limit.rlim_cur == limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) std::perror("setrlimit(RLIMIT_NOFILE)");
}

uint64_t OpenFileLimit() {
  rlimit limit{};
  return getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 0;
}

// Samples the supervisor and turns fleet counts into figures over a span.
class Reporter {
 public:
  Reporter(const Options& options, const Fleet& fleet) : options_(options), fleet_(fleet) {}

  struct Mark {
    SteadyClock::time_point when;
    uint64_t heartbeats = 0;
    std::optional<ProcessUsage> usage;
  };

  Mark Take() const {
    Mark mark{.when = SteadyClock::now(), .heartbeats = fleet_.Read().heartbeats};
    if (options_.supervisor_pid) {
      auto usage = ReadProcessUsage(*options_.supervisor_pid);
      if (usage) {
        mark.usage = *usage;
      } else if (!warned_) {
        warned_ = true;
        std::fprintf(stderr, "fleetsim: cannot sample the supervisor: %s\n",
                     usage.error().ToString().c_str());
      }
    }
    return mark;
  }

  Figures Between(const Mark& from, const Mark& to) const {
    Fleet::Counts counts = fleet_.Read();
    Figures figures;
    figures.elapsed = to.when - from.when;
    figures.agents = options_.agents;
    figures.streams_up = counts.up;
    figures.streams_ended = counts.ended;
    figures.heartbeats = counts.heartbeats;
    figures.assignments = counts.assignments;
    const double seconds = Seconds(to.when - from.when).count();
    if (seconds > 0) {
      figures.heartbeats_per_second =
          static_cast<double>(to.heartbeats - from.heartbeats) / seconds;
    }
    if (to.usage) {
      figures.supervisor_usage = to.usage;
      if (from.usage && to.usage->cpu_ticks >= from.usage->cpu_ticks) {
        figures.supervisor_cpu_percent = CpuPercent(to.usage->cpu_ticks - from.usage->cpu_ticks,
                                                    to.when - from.when, sysconf(_SC_CLK_TCK));
      }
    }
    return figures;
  }

 private:
  const Options& options_;
  const Fleet& fleet_;
  mutable bool warned_ = false;
};

std::string Label(SteadyClock::time_point start, SteadyClock::time_point now) {
  char label[32];
  std::snprintf(label, sizeof(label), "%6.1fs", Seconds(now - start).count());
  return label;
}

int Run(const Options& options) {
  if (!tls::IsLoopbackAddress(options.supervisor)) {
    std::fprintf(stderr,
                 "fleetsim: refusing %s: the fleet simulator only talks to a supervisor on "
                 "loopback (127.0.0.0/8, ::1, localhost)\n",
                 options.supervisor.c_str());
    return 2;
  }
  RaiseOpenFileLimit();
  if (OpenFileLimit() < options.agents + 64) {
    std::fprintf(stderr,
                 "fleetsim: warning: open-file limit %llu is too low for %u agents (one socket "
                 "each); raise the hard limit (ulimit -Hn)\n",
                 static_cast<unsigned long long>(OpenFileLimit()), options.agents);
  }

  std::vector<std::shared_ptr<grpc::ChannelCredentials>> credentials;
  credentials.reserve(options.agents);
  if (options.insecure) {
    std::fprintf(stderr, "fleetsim: WARNING: --insecure: plaintext links, no certificates\n");
    for (uint32_t i = 0; i < options.agents; ++i) {
      credentials.push_back(grpc::InsecureChannelCredentials());
    }
  } else {
    auto ca = tls::ReadFile(options.ca_file);
    if (!ca) {
      std::fprintf(stderr, "fleetsim: --ca-file: %s\n", ca.error().ToString().c_str());
      return 1;
    }
    std::printf("enrolling %u nodes (sim-00001 ...)\n", options.agents);
    std::fflush(stdout);
    const auto enroll_start = SteadyClock::now();
    std::atomic<uint32_t> enrolled{0};
    std::atomic<bool> enroll_done{false};
    Result<std::vector<pki::KeyAndCert>> certs;
    std::thread enroller([&] {
      certs = EnrollNodes(options.supervisor, *ca, options.join_token, options.agents, enrolled);
      enroll_done = true;
    });
    // EnrollNodes is bounded by its per-call deadlines; this only reports progress.
    for (int tick = 1; !enroll_done; ++tick) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (tick % 10 == 0) {
        std::printf("  enrolled %u/%u\n", enrolled.load(), options.agents);
        std::fflush(stdout);
      }
    }
    enroller.join();
    if (!certs) {
      std::fprintf(stderr, "fleetsim: %s\n", certs.error().ToString().c_str());
      return 1;
    }
    std::printf("enrolled %u nodes in %.1fs\n", options.agents,
                Seconds(SteadyClock::now() - enroll_start).count());
    for (const pki::KeyAndCert& cert : *certs) {
      credentials.push_back(tls::MakeChannelCredentials(
          {.ca_pem = *ca, .cert_pem = cert.cert_pem, .key_pem = cert.key_pem}));
    }
  }

  Fleet fleet(options.supervisor, options.zones);
  Reporter reporter(options, fleet);
  const auto start = SteadyClock::now();
  const auto end = start + options.duration;
  Reporter::Mark first = reporter.Take();
  Reporter::Mark last_report = first;
  auto next_report = start + options.report_interval;
  auto next_progress = start + std::chrono::seconds(1);
  std::optional<Reporter::Mark> steady;  // taken when every stream is open (or the ramp is over)
  std::string last_error;
  uint32_t added = 0;

  std::printf("opening %u agent streams to %s over %.1fs, running %.1fs in all\n", options.agents,
              options.supervisor.c_str(), Seconds(options.ramp).count(),
              Seconds(options.duration).count());
  std::fflush(stdout);
  while (true) {
    const auto now = SteadyClock::now();
    if (now >= end) break;
    // Ramp: agent i opens at start + ramp * i / N.
    while (added < options.agents && start + options.ramp * added / options.agents <= now) {
      fleet.Add(added, credentials[added]);
      ++added;
    }
    Fleet::Counts counts = fleet.Read();
    if (!counts.first_error.empty() && counts.first_error != last_error) {
      last_error = counts.first_error;
      std::fprintf(stderr, "fleetsim: a stream ended: %s\n", last_error.c_str());
    }
    if (!steady && added == options.agents &&
        (counts.up + counts.ended >= options.agents ||
         now >= start + options.ramp + std::chrono::seconds(5))) {
      steady = reporter.Take();
      std::printf("[%s] all %u streams opened: %u up, %u ended; steady state from here\n",
                  Label(start, now).c_str(), options.agents, counts.up, counts.ended);
      std::fflush(stdout);
    }
    if (!steady && now >= next_progress) {
      std::printf("[%s] connecting: %u/%u streams opened, %u up\n", Label(start, now).c_str(),
                  added, options.agents, counts.up);
      std::fflush(stdout);
      next_progress += std::chrono::seconds(1);
    }
    if (now >= next_report) {
      Reporter::Mark mark = reporter.Take();
      std::printf("%s\n",
                  FormatFigures(Label(start, now), reporter.Between(last_report, mark)).c_str());
      std::fflush(stdout);
      last_report = mark;
      next_report += options.report_interval;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(added < options.agents ? 1 : 50));
  }

  Reporter::Mark final_mark = reporter.Take();
  const Reporter::Mark& from = steady ? *steady : first;
  std::string label = std::string(steady ? "final, steady state over " : "final, whole run ") +
                      Label(from.when, final_mark.when);
  std::printf("%s\n", FormatFigures(label, reporter.Between(from, final_mark)).c_str());
  std::fflush(stdout);
  Fleet::Counts counts = fleet.Read();
  const bool all_up = counts.up == options.agents;
  if (!fleet.Stop(std::chrono::seconds(10))) {
    std::fprintf(stderr, "fleetsim: some streams did not close within 10 s\n");
  }
  if (!all_up) {
    std::fprintf(stderr, "fleetsim: only %u of %u streams were up at the end\n", counts.up,
                 options.agents);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace phoenix::fleetsim

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::printf("%s", phoenix::fleetsim::Usage().c_str());
    return 0;
  }
  auto options = phoenix::fleetsim::ParseArgs(args);
  if (!options) {
    std::fprintf(stderr, "phoenix-fleetsim: %s\n%s", options.error().ToString().c_str(),
                 phoenix::fleetsim::Usage().c_str());
    return 2;
  }
  phoenix::InitLogging("phoenix-fleetsim", "warn");
  return phoenix::fleetsim::Run(*options);
}
