// Placement: decides *where* replicas run. A pure function: a read-only cluster view and a list of
// replica requests in, a plan out (one decision per request, in order; each decision sees the
// resources and spread of the decisions before it). No I/O, no clock, no globals; the same input
// (including Options::seed) always gives the same plan.
//
// The pipeline (pipeline.cc is the only place its order is set, cheapest first):
//   feasibility filters (filters/, one class per file): node state (READY, not drained), runtime
//     available, labels (node_selector), fit (vcpus and memory free), zone spread (max skew is a
//     hard limit), distinct hosts
//   scorers (scorers/, each a value in [-1, 1], weighted): zone spread first, then spread or
//     binpack (per the request's strategy), anti-affinity (fewer replicas of the same service on
//     the node), image locality (the image is already on the node), reschedule penalty (avoid the
//     node a replacement is leaving)
//   select: visit nodes in a seeded shuffled order, stop after Options::limit feasible candidates
//     (bounded work on large clusters, as Nomad does), pick the best normalized score.
// Every node a request rejected is counted per reason, with a few named examples, so users see why
// a replica is pending.
//
// Threading: pure functions over values; safe to call from any thread, also on the same view (the
// view's index cache is internally locked).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "supervisor/state/cluster.h"

namespace phoenix::supervisor::placement {

struct NodeView {
  std::string name;
  std::string zone;
  std::map<std::string, std::string> labels;
  Resources capacity;
  Resources allocated;  // everything already running or assigned there
  std::set<RuntimeKind> runtimes;
  NodeState state = NodeState::kReady;
  bool drained = false;
  std::set<std::string> images;  // image references present on the node ("name:tag", ids)
  std::set<uint16_t> taken_front_door_ports;  // its front door cannot serve these
};

class ClusterIndex;  // cluster_index.h

// Placement's cache of a view's zone layout (see cluster_index.h): built by the first Place() over
// the view and checked against the nodes by every later one, so callers never maintain it and may
// change `nodes` freely. Copies share the (immutable) index; it is re-checked before use anyway.
class ClusterIndexCache {
 public:
  ClusterIndexCache() = default;
  ClusterIndexCache(const ClusterIndexCache& other) : index_(other.Get()) {}
  ClusterIndexCache& operator=(const ClusterIndexCache& other) {
    if (this != &other) Set(other.Get());
    return *this;
  }

  std::shared_ptr<const ClusterIndex> Get() const;
  void Set(std::shared_ptr<const ClusterIndex> index) const;

 private:
  mutable std::mutex mutex_;  // Place() may run on the same view from several threads
  mutable std::shared_ptr<const ClusterIndex> index_;
};

struct ClusterView {
  std::vector<NodeView> nodes;
  ClusterIndexCache index_cache;  // placement's, not part of the view's value
};

struct PlacementRequest {
  std::string service;
  uint32_t index = 0;  // the replica's index (for messages)
  RuntimeKind runtime = RuntimeKind::kContainer;
  std::string image;
  Resources need;                // vcpus and memory of one replica
  std::string spread_attribute;  // "zone" or empty
  uint32_t max_skew = 1;
  PlacementStrategy strategy = PlacementStrategy::kSpread;
  std::map<std::string, std::string> node_selector;
  bool distinct_hosts = false;
  // Nodes (indexes into ClusterView::nodes) holding the service's other live replicas, one entry
  // per replica (a node appears once per replica it holds). Replicas placed earlier in the same
  // plan are added automatically.
  std::vector<size_t> service_replica_nodes;
  std::optional<size_t> leaving_node;  // the node a replacement leaves (reschedule penalty)
  uint16_t front_door_port = 0;        // the service's front-door port; 0: none
};

// Why a request landed where it did, or why it could not land.
struct Explanation {
  size_t nodes_total = 0;
  size_t nodes_evaluated = 0;
  size_t nodes_feasible = 0;
  std::map<std::string, size_t> rejected;  // reason ("memory", "zone-skew", ...) -> count
  std::vector<std::string> examples;       // up to a few "node: why" lines
  std::map<std::string, double> scores;    // the chosen node's score per scorer
  // Added: the chosen node's name (empty = pending), and the examples grouped by reason (up to a
  // few per reason) so Summary() can name them next to their count.
  std::string node;
  std::map<std::string, std::vector<std::string>> reason_examples;
  // "no node fits: 3 nodes: 2 memory (n1: needs 512 MiB, 128 free), 1 runtime (n3: no container)"
  std::string Summary() const;
};

struct Decision {
  std::optional<size_t> node;  // index into ClusterView::nodes; nullopt = pending
  double score = 0;
  Explanation explanation;
};

struct Options {
  // Feasible candidates to score before choosing; 0 = ceil(log2(nodes)) but at least 8 (scanning
  // all nodes when the cluster is small).
  size_t limit = 0;
  uint64_t seed = 1;
};

struct Plan {
  std::vector<Decision> decisions;  // one per request, same order
};

[[nodiscard]] Plan Place(const ClusterView& cluster, const std::vector<PlacementRequest>& requests,
                         const Options& options);

}  // namespace phoenix::supervisor::placement
