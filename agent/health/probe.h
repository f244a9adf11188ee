// Health probes: one TCP or HTTP check against a guest endpoint, asynchronously on the agent's
// io_context.
//
// TCP: healthy when the connect succeeds. HTTP: connect, send "GET <path> HTTP/1.0" with Host and
// "Connection: close", and read only the status line (at most kMaxStatusLineBytes); 200-399 is
// healthy, the body is never read. The whole probe, connect included, is bounded by
// ProbeTarget::timeout. Hosts are IP literals: the agent probes addresses it assigned, and name
// resolution would need a resolver thread. With ProbeTarget::netns set, the probe connects from
// inside that network namespace (a guest listening on its own 127.0.0.1), through
// net::AsyncConnect; everything after the connect is the same.
//
// Threading: call RunProbe on the loop thread. `done` runs exactly once, on the loop, never inside
// RunProbe itself, unless the probe is cancelled through the returned ProbeCanceller first.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>

namespace phoenix::agent::health {

struct ProbeTarget {
  enum class Kind { kHttp, kTcp };
  Kind kind = Kind::kHttp;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string path = "/health";  // HTTP only
  std::chrono::milliseconds timeout{1000};
  // Network namespace file to connect in (/run/phoenix/netns/<instance>); empty = the agent's own.
  std::filesystem::path netns;
};

struct ProbeResult {
  bool ok = false;
  // For people: "HTTP 200", "HTTP 503", "connect 127.0.0.1:41234: connection refused",
  // "connect 127.0.0.1:8080 in netns /run/phoenix/netns/x: connection refused",
  // "no such namespace file /run/phoenix/netns/x", "timed out after 1000 ms".
  std::string detail;
  std::chrono::microseconds latency{0};
};

inline constexpr size_t kMaxStatusLineBytes = 4096;

namespace detail {
class ProbeOperation;
}  // namespace detail

// Stops an in-flight probe: closes its socket now and guarantees `done` is not called. Safe to call
// after the probe finished, more than once, or on a default-constructed canceller. Loop thread
// only.
class ProbeCanceller {
 public:
  ProbeCanceller() = default;
  explicit ProbeCanceller(std::weak_ptr<detail::ProbeOperation> operation)
      : operation_(std::move(operation)) {}
  void Cancel();

 private:
  std::weak_ptr<detail::ProbeOperation> operation_;
};

// Starts one probe. Invalid targets (host not an IP, path not starting with '/', timeout <= 0)
// complete with ok=false and a detail saying why.
ProbeCanceller RunProbe(boost::asio::io_context& io, const ProbeTarget& target,
                        std::function<void(ProbeResult)> done);

// "HTTP/1.1 204 No Content" -> 204. Rejects anything that is not "HTTP/<d>.<d> <3 digits>"
// followed by a space or the end of the line.
std::optional<int> ParseHttpStatusLine(std::string_view line);

}  // namespace phoenix::agent::health
