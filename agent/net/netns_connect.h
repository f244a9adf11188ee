// AsyncConnect: connects a new TCP socket to a Backend, in the backend's network namespace when it
// has one, for the published-port proxy and the health probes.
//
// A socket belongs to the network namespace of the thread that created it, for its whole life. So
// for a namespaced backend the socket is created on a helper thread that enters the namespace
// (setns), calls socket() and returns to the agent's namespace; the fd is passed back to the loop
// over a private socketpair and connected there with Asio like any other. The event loop thread
// never calls setns (every socket it created afterwards would land in the guest's namespace).
// Entering a namespace needs CAP_SYS_ADMIN (the agent runs as root).
//
// The helper is one process-wide thread, started on first use; it only opens, enters and leaves
// namespaces and creates sockets (microseconds each), so one serves every proxy and probe. It never
// touches the io_context: a cancelled or abandoned request costs nothing but a closed socketpair.
//
// Threading: call AsyncConnect on the io_context's loop thread. `done` runs exactly once, on the
// loop, never inside AsyncConnect, unless cancelled first through the returned ConnectCanceller.
#pragma once

#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "agent/net/backend.h"
#include "proto/support/error.h"

namespace phoenix::agent::net {

namespace detail {
class ConnectOperation;
}  // namespace detail

// Stops an in-flight connect: closes its socket now and guarantees `done` is not called. Safe after
// completion, more than once, and on a default-constructed canceller. Loop thread only.
class ConnectCanceller {
 public:
  ConnectCanceller() = default;
  explicit ConnectCanceller(std::weak_ptr<detail::ConnectOperation> operation)
      : operation_(std::move(operation)) {}
  void Cancel();

 private:
  std::weak_ptr<detail::ConnectOperation> operation_;
};

// Connects a new socket to backend.endpoint. On success `done` gets the connected socket (bound to
// `io`). Errors, messages written for people:
//   kNotFound          "no such namespace file /run/phoenix/netns/x"
//   kPermissionDenied  "enter netns /run/phoenix/netns/x: Operation not permitted"
//   kInvalidArgument   a relative namespace path, or a file that is not a network namespace
//                      ("enter netns /tmp/f: Invalid argument (not a network namespace file)")
//   kUnavailable       "connect 127.0.0.1:8080 in netns /run/phoenix/netns/x: connection refused"
//                      (no netns: "connect 127.0.0.1:8080: connection refused")
//   kInternal          other system call failures, with errno
// There is no timeout here: callers bound the attempt with their own timer and Cancel.
ConnectCanceller AsyncConnect(boost::asio::io_context& io, const Backend& backend,
                              std::function<void(Result<boost::asio::ip::tcp::socket>)> done);

}  // namespace phoenix::agent::net
