// FrontDoorTable: what a node's front door should serve (issue 12), as plain values, and the one
// place that turns it into HAProxy's configuration. Pure: no I/O.
//
// A table lists services; each has a front-door port bound on the node's address and the servers
// (replicas, on this node or another) that answer it. The agent gets tables from the supervisor
// (versioned; older versions are ignored) and FrontDoor makes the node's HAProxy match them:
// servers change through the Runtime API, the set of frontends through a seamless reload.
//
// The rules every server line follows, in the config file and in a Runtime API "add server"
// (which does not apply default-server), live here in ServerOptions:
//  - leastconn balancing, so a request goes to the replica with the fewest outstanding ones
//    (relative to its weight): per request over keep-alive connections in HTTP mode;
//  - passive health: a replica whose requests fail (connection errors, and 5xx in HTTP mode) 3
//    times in a row is marked down at once ("observe ... on-error mark-down"); a TCP check every
//    2 s (fastinter 500 ms while it changes state) brings it back;
//  - zone preference by weight: servers in this node's zone weigh kLocalZoneWeight, others
//    kRemoteZoneWeight. HAProxy 2.6's leastconn orders servers by in-flight requests / weight, so
//    the preference is only partial: an idle remote replica still takes the next request
//    (measured with 20 concurrent clients: 50 % local, 25 % to each of two remote zones). A
//    local-first backend spilling over to all zones is the planned fix.
//
// Thread-safety: values; copy freely.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent::frontdoor {

enum class FrontDoorMode { kHttp, kTcp };

struct FrontDoorServer {
  std::string name;     // unique in its service: the replica's guest name ("web-0-3")
  std::string address;  // IPv4 or IPv6 literal where the replica's port is reachable
  uint16_t port = 0;
  std::string zone;       // the replica's node's zone; empty = unknown (treated as remote)
  bool draining = false;  // leaving: no new requests, in-flight ones finish
  bool operator==(const FrontDoorServer&) const = default;
};

struct FrontDoorService {
  std::string name;   // the service's name: names its frontend and backend
  uint16_t port = 0;  // front-door port on the node's address
  FrontDoorMode mode = FrontDoorMode::kHttp;
  std::vector<FrontDoorServer> servers;
  bool operator==(const FrontDoorService&) const = default;
};

struct FrontDoorTable {
  uint64_t version = 0;  // from the supervisor; strictly increasing
  std::vector<FrontDoorService> services;
  bool operator==(const FrontDoorTable&) const = default;
};

// Where the node's HAProxy keeps its files: all under one private directory of the agent's state.
struct HaproxyFiles {
  std::filesystem::path dir;
  std::filesystem::path config() const { return dir / "haproxy.cfg"; }
  std::filesystem::path api_socket() const { return dir / "api.sock"; }        // admin level
  std::filesystem::path master_socket() const { return dir / "master.sock"; }  // reloads
  std::filesystem::path pid_file() const { return dir / "haproxy.pid"; }       // the master's pid
  std::filesystem::path log() const { return dir / "haproxy.log"; }
};

struct FrontDoorSettings {
  std::string bind_address = "127.0.0.1";  // the node's advertised address
  std::string zone;                        // this node's zone
  // After a reload, old workers finish their in-flight requests for at most this long.
  std::chrono::seconds drain_timeout{30};
  // A request waits this long for a free replica (queue) or a connection, then gets 503.
  std::chrono::milliseconds queue_timeout{5000};
};

inline constexpr uint32_t kLocalZoneWeight = 100;
inline constexpr uint32_t kRemoteZoneWeight = 10;
inline constexpr size_t kMaxServices = 512;
inline constexpr size_t kMaxServersPerService = 512;

// Checks every name (HaproxyRuntime::IsValidName), address (IP literal), port (1-65535), the
// uniqueness of service names, ports and server names per service, and the bounds above.
// kInvalidArgument naming the offending field ("services[2].servers[0].address").
[[nodiscard]] Result<void> ValidateTable(const FrontDoorTable& table);

uint32_t ServerWeight(const FrontDoorServer& server, const FrontDoorSettings& settings);

// The options that follow "server NAME ADDR:PORT" for this mode (everything but weight and
// disabled), shared by the config file and the Runtime API.
std::string ServerOptions(FrontDoorMode mode);

// The complete haproxy.cfg for `table` (which must be valid): master-worker, the admin socket with
// listeners exposed for seamless reloads, one frontend and one backend per service with its
// servers (draining ones with weight 0, so a restarted HAProxy sends them nothing).
std::string RenderConfig(const FrontDoorTable& table, const HaproxyFiles& files,
                         const FrontDoorSettings& settings);

// What only a reload can change: each service's name, port and mode, and the bind address. Two
// tables with equal signatures differ at most in servers.
std::string FrontendSignature(const FrontDoorTable& table, const FrontDoorSettings& settings);

}  // namespace phoenix::agent::frontdoor
