// Test helpers that drive a Boost.Asio io_context on the test's own thread, bounded in time.
// Test code only.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace phoenix::agent::testing {

// Runs the loop in this thread until `done` holds or `limit` passes; returns done().
inline bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done,
                     std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  // Keeps run_for waiting out its slice when nothing is pending instead of returning at once.
  auto guard = boost::asio::make_work_guard(io);
  if (io.stopped()) {
    io.restart();
  }
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(5));
  }
  return done();
}

// Runs the loop for `duration` (to observe that something does NOT happen).
inline void RunFor(boost::asio::io_context& io, std::chrono::milliseconds duration) {
  RunUntil(
      io, [] { return false; }, duration);
}

}  // namespace phoenix::agent::testing
