// LoadRunner: sends HTTP/1.1 GET requests to a set of loopback targets at the rate a Profile asks
// for (open loop: arrivals do not wait for answers, so a slow service sees the load pile up as it
// would in reality), and measures every answer. Bounded: it stops starting requests at
// RunOptions::duration or max_requests, whichever comes first, and gives requests still in flight
// at most request_timeout to finish.
//
// Connections are kept alive and reused per target; a request whose reused connection turns out
// to be closed by the server before any reply byte is retried once on a fresh connection (that is
// the server's idle timeout, not a failure). Requests go round-robin over the current targets;
// SetTargets swaps them at any time (service mode), and idle connections to targets that left are
// closed, so a draining replica stops getting traffic.
//
// Threading: everything runs on the io_context given to the constructor, which must be run by one
// thread. SetTargets may be called from other threads (it posts to the loop). Callbacks run on the
// loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "tools/loadgen/profile.h"
#include "tools/loadgen/stats.h"
#include "tools/loadgen/url.h"

namespace phoenix::loadgen {

struct RunOptions {
  Profile profile;
  std::chrono::milliseconds duration{0};            // hard bound on the sending time
  uint64_t max_requests = 0;                        // hard bound on requests started
  std::chrono::milliseconds request_timeout{2000};  // connect + send + full reply
  size_t max_in_flight = 512;  // beyond this a due request is dropped and counted as an error
};

// One line of progress: the last second's numbers.
struct SecondReport {
  int second = 0;                        // 1, 2, ...
  double wanted_rate = 0;                // the profile's rate at the end of this second
  uint64_t sent = 0;                     // started in this second
  uint64_t ok = 0;                       // answered OK in this second
  uint64_t errors = 0;                   // failed in this second
  std::optional<double> p50_ms, p99_ms;  // of this second's answers
  size_t in_flight = 0;
  size_t targets = 0;
};

struct Report {
  double seconds = 0;  // from start to the last answer
  RunTotals totals;
  double achieved_rate = 0;  // OK answers per second over the sending time
  std::optional<double> p50_ms, p90_ms, p99_ms, max_ms;
  bool hit_max_requests = false;
  // The same counts per profile phase (by the phase a request was started in), one per phase:
  // what a load step did to the service, apart from the calm before and after it.
  std::vector<RunTotals> phases;
};

class LoadRunner {
 public:
  LoadRunner(boost::asio::io_context& io, RunOptions options,
             std::function<void(const SecondReport&)> on_second);
  ~LoadRunner();
  LoadRunner(const LoadRunner&) = delete;
  LoadRunner& operator=(const LoadRunner&) = delete;

  // Thread-safe: posts to the loop.
  void SetTargets(std::vector<Target> targets);
  // Starts the clock; `done` runs on the loop once the run ended and every request finished or
  // timed out. Call once.
  void Start(std::function<void(const Report&)> done);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace phoenix::loadgen
