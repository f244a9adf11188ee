// The contract between the agents' link (supervisor/agents: gRPC streams, protobuf) and the
// controller (supervisor/reconcile): what a connected agent says, in plain values, and how the
// controller talks back to it. Keeps the controller free of gRPC and the link free of decisions.
//
// Threading: AgentLinkHandler methods may be called from any thread; AgentConnected and
// AgentReported never block; AgentGone waits until the handler's thread has finished every queued
// use of the session (a few microseconds unless the handler is busy committing). AgentSession
// methods are called by the handler from its own thread and must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "proto/support/error.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor {

// A node's full assignment: every replica the supervisor wants on it.
struct AssignedReplica {
  std::string service;
  uint32_t index = 0;
  uint64_t generation = 0;
  std::string guest;           // the guest's name on the node
  std::string guest_template;  // ServiceSpec::guest_template (serialized phoenix.v1.GuestSpec)
  bool operator==(const AssignedReplica&) const = default;
};

struct NodeAssignment {
  uint64_t version = 0;
  std::vector<AssignedReplica> replicas;
};

// Every front-door service with its servers cluster-wide: the same table for every agent, each
// applying it to its node's HAProxy (mirrors phoenix.v1.FrontDoorTable).
struct FrontDoorServer {
  std::string name;     // the replica's guest name
  std::string address;  // where its guest port is reachable from every node
  uint16_t port = 0;
  std::string zone;
  bool draining = false;
  bool operator==(const FrontDoorServer&) const = default;
};

struct FrontDoorService {
  std::string name;
  uint16_t port = 0;
  FrontDoorProtocol protocol = FrontDoorProtocol::kHttp;
  std::vector<FrontDoorServer> servers;
  bool operator==(const FrontDoorService&) const = default;
};

// A node's instance subnet and where the other nodes route to it.
struct NodeRoute {
  std::string node;
  std::string subnet;  // "10.88.1.0/24"
  std::string via;     // the node's advertise address
  bool operator==(const NodeRoute&) const = default;
};

struct FrontDoorTable {
  uint64_t version = 0;
  std::vector<FrontDoorService> services;
  std::vector<NodeRoute> routes;
};

// What an agent says when its link opens (after mTLS proved `name`).
struct AgentHello {
  NodeRecord node;  // name, zone, labels, capacity, runtimes; versions ignored
  // An IP literal, or empty when the agent said none or something else (it reaches every other
  // node's HAProxy config, so it is checked here, at the edge).
  std::string advertise_address;
  // A canonical IPv4 subnet ("10.88.1.0/24"), or empty when the agent said none or something else.
  std::string instance_subnet;
  Resources allocated;
  uint64_t applied_version = 0;
  std::set<std::string> images;
  std::string agent_version;
};

// A guest the agent runs for its assignment, as it reports it.
struct ReportedGuest {
  std::string name;
  ReplicaObservation observed;
};

// One replica's load through one node's front door (HAProxy's counters on that node).
struct FrontDoorServerLoad {
  std::string service;
  std::string server;  // the replica's guest name
  double requests_per_second = 0;
  uint64_t requests_total = 0;
  uint64_t responses_5xx_total = 0;
  uint64_t connection_errors_total = 0;
  uint32_t in_flight = 0;
  bool operator==(const FrontDoorServerLoad&) const = default;
};

// A front-door service a node's HAProxy cannot serve (its port is taken there).
struct BlockedFrontDoor {
  std::string service;
  uint16_t port = 0;
  std::string reason;
  bool operator==(const BlockedFrontDoor&) const = default;
};

struct AgentReport {
  uint64_t applied_version = 0;
  Resources allocated;
  std::vector<ReportedGuest> guests;
  std::set<std::string> images;
  // Empty unless the node's front door measured a window (front_door_window_ms > 0).
  std::vector<FrontDoorServerLoad> front_door;
  std::vector<BlockedFrontDoor> front_door_blocked;
};

// The link's side of one connected agent. Implemented by supervisor/agents.
class AgentSession {
 public:
  virtual ~AgentSession() = default;
  // Queue the assignment for sending; called from the handler's thread; must not block.
  virtual void SendAssignment(const NodeAssignment& assignment) = 0;
  // Queue the front door table for sending; same rules as SendAssignment.
  virtual void SendFrontDoor(const FrontDoorTable& table) = 0;
  // End the stream with `error` (e.g. a second session for the same node replaced this one).
  virtual void Close(const Error& error) = 0;
};

// The controller's side. Implemented by Controller.
class AgentLinkHandler {
 public:
  virtual ~AgentLinkHandler() = default;
  // A new session for hello.node.name (already authenticated by its certificate). Replaces, and
  // closes, an older session of the same node. The handler answers with SendAssignment.
  // `session` must stay valid until AgentGone(session) has been called and has returned.
  virtual void AgentConnected(AgentSession* session, AgentHello hello) = 0;
  // A heartbeat, or a change of a guest's state.
  virtual void AgentReported(AgentSession* session, AgentReport report) = 0;
  // The stream ended (either side). No call for `session` follows.
  virtual void AgentGone(AgentSession* session) = 0;
  // Sent to agents in Welcome.
  virtual std::chrono::milliseconds HeartbeatInterval() const = 0;
};

}  // namespace phoenix::supervisor
