// Backend: where the agent connects to reach a guest port. A TCP endpoint, and the network
// namespace it lives in: empty for the agent's own namespace (VMs behind QEMU hostfwd), or a
// namespace file (/run/phoenix/netns/<instance>, /proc/<pid>/ns/net) for guests with their own
// network stack, where 127.0.0.1 means the guest's loopback, not the host's.
//
// Plain value; safe to copy between threads.
#pragma once

#include <filesystem>
#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace phoenix::agent::net {

struct Backend {
  boost::asio::ip::tcp::endpoint endpoint;
  std::filesystem::path netns;  // empty = the agent's own network namespace

  bool operator==(const Backend&) const = default;
};

// "127.0.0.1:8080", "[::1]:8080", "127.0.0.1:8080 in netns /run/phoenix/netns/phx-web-3".
std::string BackendString(const Backend& backend);

}  // namespace phoenix::agent::net
