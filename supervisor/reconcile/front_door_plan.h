// The front door's membership, decided purely from the cluster's state (issue 12): which replicas
// of each front-door service every node's HAProxy sends requests to, and where it reaches them.
// State in, table out; the controller sends the result to every agent when it changes.
//
// Rules:
//  - A replica serves once its guest is RUNNING and healthy (no health check = healthy) on a node
//    that is not DOWN; a SUSPECT node's replicas stay in (static stability: every HAProxy checks
//    them itself and stops sending to dead ones within seconds).
//  - A draining replica (scaled in, waiting out its grace) stays in with draining set, so in-flight
//    requests finish and no new ones arrive, until it leaves its node's assignment.
//  - Its address is its own address on its node's instance network when it has one (HAProxy
//    reaches the guest port there, no agent in the path); else the endpoint its node reported for
//    the front door's guest port, where a wildcard host address (0.0.0.0, ::) means the node's
//    advertise address. A replica with neither is left out (it is not reachable yet).
//  - Node routes: every node with an instance subnet and an advertise address, unless its subnet
//    overlaps another node's: an ambiguous route would send requests to the wrong node, so both
//    are left out (and their replicas are reached at their published endpoints).
//  - Services and servers are sorted by name, so equal states give equal tables.
//
// Thread-safety: pure functions over values.
#pragma once

#include <string>
#include <vector>

#include "supervisor/reconcile/agent_link.h"
#include "supervisor/state/cluster.h"

namespace phoenix::supervisor {

struct FrontDoorReplicaView {
  std::string guest;  // its guest name
  std::string zone;
  std::string node_address;  // its node's advertise address (may be empty)
  bool node_down = false;
  bool draining = false;
  GuestState guest_state = GuestState::kUnknown;
  bool healthy = false;
  std::vector<std::string> endpoints;  // as reported: "10.0.0.2:31000->80"
  // Its own address on its node's instance network, when the node has one other nodes route to:
  // then the front door reaches the guest port there, with no agent in the path.
  std::string instance_address;
};

struct FrontDoorServiceView {
  std::string name;
  FrontDoorPort door;
  std::vector<FrontDoorReplicaView> replicas;
};

std::vector<FrontDoorService> PlanFrontDoor(const std::vector<FrontDoorServiceView>& services);

struct NodeRoutePlan {
  std::vector<NodeRoute> routes;         // sorted by node
  std::vector<std::string> overlapping;  // nodes left out, sorted
};
// `candidates`: every node's {name, subnet as its hello said, advertise address}.
NodeRoutePlan PlanNodeRoutes(const std::vector<NodeRoute>& candidates);

// The next table version: above `last`, and at least the wall clock in microseconds, so tables of
// a restarted supervisor still supersede those its predecessor sent.
uint64_t NextFrontDoorVersion(uint64_t last, TimePoint now);

}  // namespace phoenix::supervisor
