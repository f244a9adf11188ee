// HaproxyRuntime: the agent's hand on the HAProxy it owns (the front door's data plane, issue 12),
// through HAProxy's Runtime API on that HAProxy's admin socket: a backend's servers are added,
// weighted, drained, put in maintenance and deleted without a reload, and read back.
//
// One command per connection (the socket's non-interactive mode: HAProxy answers and closes), so
// there is no session state to lose when HAProxy restarts. Names that reach a command are checked
// first (letters, digits, '.', '_', '-'; at most 64): a command line is text, and a name with a
// space or a newline would be another command. Every failure names the command and what HAProxy
// said.
//
// Verified with Debian 12's HAProxy 2.6 (../shared/recipes/haproxy-runtime-api): a dynamic server
// starts in maintenance ("add server" then "enable server"); "del server" needs maintenance and no
// connections; "set server ... state drain" lets in-flight requests finish and sends no new ones.
//
// Thread-safety: the object holds only the socket path; calls from several threads each open their
// own connection. Calls block for at most the timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent::frontdoor {

// What an operator (or the agent) asked of a server; HAProxy's "admin state".
enum class ServerAdmin { kReady, kDrain, kMaint };
std::string_view ServerAdminName(ServerAdmin state);  // "ready", "drain", "maint"

struct ServerState {
  std::string backend, name, address;
  uint16_t port = 0;
  bool in_maintenance = false;  // srv_admin_state has a maintenance bit
  bool draining = false;        // srv_admin_state has the drain bit
  bool running = false;         // srv_op_state 2: up (checks passed, or none)
  uint32_t weight = 0;          // srv_uweight: the user weight
};

class HaproxyRuntime {
 public:
  explicit HaproxyRuntime(std::filesystem::path socket,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  // Sends one command and returns HAProxy's whole answer.
  [[nodiscard]] Result<std::string> Execute(std::string_view command) const;

  // A new server of `backend` at address:port (an IPv4 or IPv6 literal) with `weight` (0-256)
  // and further server `options` (HAProxy keywords, e.g. ServerOptions()), in maintenance until
  // SetAdmin(kReady), its health check (if any) off until EnableHealth. kAlreadyExists when the
  // name is taken.
  [[nodiscard]] Result<void> AddServer(std::string_view backend, std::string_view server,
                                       std::string_view address, uint16_t port, uint32_t weight,
                                       std::string_view options = {}) const;
  [[nodiscard]] Result<void> EnableHealth(std::string_view backend, std::string_view server) const;
  [[nodiscard]] Result<void> SetAdmin(std::string_view backend, std::string_view server,
                                      ServerAdmin state) const;
  [[nodiscard]] Result<void> SetWeight(std::string_view backend, std::string_view server,
                                       uint32_t weight) const;
  // The server must be in maintenance with no connection left; kFailedPrecondition otherwise.
  [[nodiscard]] Result<void> DeleteServer(std::string_view backend, std::string_view server) const;
  // Every server of `backend`, in HAProxy's order. kNotFound for an unknown backend.
  [[nodiscard]] Result<std::vector<ServerState>> Servers(std::string_view backend) const;

  static constexpr size_t kMaxName = 64;
  static bool IsValidName(std::string_view name);

 private:
  // "set server BACKEND/SERVER <setting>": HAProxy answers nothing on success.
  [[nodiscard]] Result<void> SetServer(std::string_view backend, std::string_view server,
                                       const std::string& setting) const;

  std::filesystem::path socket_;
  std::chrono::milliseconds timeout_;
};

// "127.0.0.1:8080" or "ipv6@::1:8080": HAProxy's address syntax. `address` must be an IP literal.
std::string HaproxyAddress(std::string_view address, uint16_t port);

// Parses the answer of "show servers state" (format version 1). Public for tests.
[[nodiscard]] Result<std::vector<ServerState>> ParseServersState(std::string_view text);

}  // namespace phoenix::agent::frontdoor
