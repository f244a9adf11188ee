// PortProxy: one published port. A userspace TCP proxy from a stable host address (127.0.0.1 by
// default) to the guest's current backend (QEMU hostfwd port, 127.0.0.1 inside a container's own
// network namespace, micro-VM tap address), so the URL users hold survives guest restarts and works
// the same for every runtime. Backends in another network namespace are reached through
// AsyncConnect (netns_connect.h).
//
// Behaviour:
//  - While no backend is set (guest restarting), accepted connections are held, up to
//    ProxyOptions::hold_timeout after accept, and forwarded as soon as SetBackend gives one.
//  - A refused/failed backend connect is retried (connect_attempts, doubling retry_backoff) within
//    the same hold timeout, because a restored guest's port may take a moment to open. Then the
//    client is closed and counted in ProxyStats::failed. A backend namespace that cannot be entered
//    (file missing, not a namespace) is such a failure too.
//  - Forwarding is full duplex with half-close (EOF on one side becomes shutdown(send) on the
//    other) and one fixed 16 KiB buffer per direction: a slow reader stalls its writer (TCP
//    backpressure) instead of growing a queue. A reset or error on either side closes both.
//    Once the guest has sent EOF, client bytes arriving afterwards close both sides at once (no
//    one will answer them, and a keep-alive client must see the close rather than wait).
//  - At most ProxyOptions::max_connections are open; further clients are closed on accept. A
//    forwarding connection silent in both directions for ProxyOptions::idle_timeout is closed.
//  - Requests are counted for the guest's metrics, cheaply, on the loop thread: a request is a
//    client turn (the first bytes of a connection, or client bytes after the guest last replied);
//    its latency runs from reading those bytes to reading the guest's first reply byte. Exact for
//    HTTP/1.x without pipelining; a pipelined burst counts as one request. Time spent waiting for a
//    backend is not in the latency (reading starts once connected); such waits that fail are in
//    ProxyStats::failed.
//  - Connections already forwarding keep their backend when SetBackend changes it; only new and
//    still-waiting connections use the new one.
//
// Ownership and threading: create, use and destroy on the io_context's (single) loop thread. All
// completions run there. Close() (also run by the destructor) closes the listener and every
// connection synchronously; completions still queued afterwards see the closed state through
// shared internal state and do nothing, so none touches a destroyed PortProxy.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "agent/net/backend.h"
#include "agent/net/latency_histogram.h"
#include "proto/support/error.h"

namespace phoenix::agent::net {

namespace detail {
class ProxyCore;  // listener, sessions and stats; shared with in-flight completions
}  // namespace detail

struct ProxyOptions {
  // How long an accepted connection may wait for a backend to be set and to accept.
  std::chrono::milliseconds hold_timeout{std::chrono::seconds(30)};
  // Connect attempts per backend before giving up (all within hold_timeout).
  int connect_attempts = 5;
  // Wait before the second attempt; doubles for each further one.
  std::chrono::milliseconds retry_backoff{100};
  // Open connections (held ones included) beyond which new clients are closed at once: while a
  // guest restarts, held connections must not exhaust the agent's file descriptors.
  size_t max_connections = 1024;
  // A forwarding connection on which neither side sent a byte for this long is closed: idle
  // clients must not hold connections (and the agent's descriptors) for ever.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
};

struct ProxyStats {
  uint64_t accepted = 0;     // client connections accepted since Listen
  uint64_t active = 0;       // open now: waiting, connecting or forwarding
  uint64_t failed = 0;       // closed without reaching a backend (none set in time, or unreachable)
  uint64_t rejected = 0;     // closed on accept because max_connections were open
  uint64_t idle_closed = 0;  // closed after idle_timeout without traffic
  uint64_t bytes_in = 0;     // client -> backend, bytes delivered
  uint64_t bytes_out = 0;    // backend -> client, bytes delivered
  uint64_t requests = 0;     // client turns forwarded (see the header comment)
  LatencyHistogram latency;  // per request the guest answered: time to its first reply byte
};

class PortProxy {
 public:
  // Listens on host_ip:port (port 0 = the kernel picks; read it back with port()). Errors:
  // kInvalidArgument (field "host_ip") for a malformed address, kAlreadyExists when the port is
  // taken, kUnavailable for other bind/listen failures; messages name "ip:port".
  [[nodiscard]] static Result<std::unique_ptr<PortProxy>> Listen(boost::asio::io_context& io,
                                                                 const std::string& host_ip,
                                                                 uint16_t port,
                                                                 ProxyOptions options = {});

  ~PortProxy();
  PortProxy(const PortProxy&) = delete;
  PortProxy& operator=(const PortProxy&) = delete;

  // The bound port (the kernel's choice when Listen got 0).
  uint16_t port() const { return port_; }

  // Where new connections go; std::nullopt holds them (guest not running). Held connections are
  // forwarded immediately when a backend is set.
  void SetBackend(std::optional<Backend> backend);
  // A backend in the agent's own network namespace.
  void SetBackend(const boost::asio::ip::tcp::endpoint& endpoint) {
    SetBackend(Backend{endpoint, {}});
  }

  ProxyStats stats() const;

  // Stops listening and closes every connection now. Idempotent.
  void Close();

 private:
  PortProxy(std::shared_ptr<detail::ProxyCore> core, uint16_t port);

  std::shared_ptr<detail::ProxyCore> core_;
  uint16_t port_ = 0;
};

}  // namespace phoenix::agent::net
