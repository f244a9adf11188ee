// What the filters and scorers see besides the node itself: the effects of the decisions made so
// far in one Plan (PlanState) and what one request needs to know about its service
// (RequestContext).
//
// PlanState keeps *deltas* over the read-only ClusterView (resources added per node, replicas
// placed per service) instead of copying the view for every request: a plan of k decisions over n
// nodes then costs O(k) extra memory, not O(k * n), which is what lets placement keep up with a
// 10,000-node cluster.
//
// Ownership: both borrow the ClusterView and the request; they must not outlive them. Not
// thread-safe (one Place() call owns its PlanState).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "supervisor/placement/cluster_index.h"
#include "supervisor/placement/placement.h"

namespace phoenix::supervisor::placement {

// The spread attribute this pipeline understands (PlacementRequest::spread_attribute).
inline constexpr std::string_view kZoneAttribute = "zone";

// What the hot filters and scorers read of a node, packed (32 bytes, so the whole cluster's facts
// stay in cache while NodeViews, with their maps and sets, are scattered over the heap). Derived
// from the NodeView on first use, once per plan; the plan's decisions are subtracted from the free
// resources here (the per-plan delta), never from a copy of the view.
struct NodeFacts {
  uint64_t memory_capacity = 0;
  uint64_t memory_free = 0;  // capacity - allocated - this plan's decisions, never below 0
  uint32_t vcpu_capacity = 0;
  uint32_t vcpu_free = 0;
  uint8_t runtimes = 0;  // bit (1 << RuntimeKind)
  bool ready = false;    // NodeStateFilter::Passes
  bool resolved = false;
};

inline constexpr uint8_t RuntimeBit(RuntimeKind kind) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(kind));
}

class PlanState {
 public:
  explicit PlanState(const ClusterView& cluster);
  PlanState(const PlanState&) = delete;
  PlanState& operator=(const PlanState&) = delete;

  const ClusterView& cluster() const { return cluster_; }
  const NodeView& node(size_t index) const { return cluster_.nodes[index]; }
  size_t size() const { return cluster_.nodes.size(); }

  // capacity - allocated - what earlier decisions of this plan put there, never below zero.
  Resources Free(size_t node) const {
    const NodeFacts& facts = Facts(node);
    return Resources{facts.vcpu_free, facts.memory_free};
  }

  // The node's packed facts. Resolved lazily: a cache, so logically const.
  const NodeFacts& Facts(size_t node) const {
    const NodeFacts& facts = facts_[node];
    return facts.resolved ? facts : Resolve(node);
  }
  // The node's zone as a small dense id (kNoZone for a node without a zone), from the view's index.
  ZoneId ZoneOf(size_t node) const { return index_->ZoneOf(node); }
  std::string_view ZoneName(ZoneId zone) const { return index_->ZoneName(zone); }
  size_t ZoneCount() const { return index_->ZoneCount(); }

  // Zones holding at least one node that passes the node-level checks for the request (READY, not
  // drained, the runtime, the node_selector): indexed by ZoneId, true = eligible. Computed once per
  // (runtime, node_selector) per plan: the node-level checks do not depend on earlier decisions.
  // Walks each zone's nodes until the first that passes, so healthy zones cost a node or two.
  const std::vector<bool>& EligibleZones(const PlacementRequest& request) const;

  // Nodes this plan placed replicas of `service` on so far (one entry per replica).
  const std::vector<size_t>& PlacedFor(const std::string& service) const;

  // Records a decision so later requests see its resources and its replica.
  void Commit(const PlacementRequest& request, size_t node);

 private:
  struct EligibilityClass {
    RuntimeKind runtime;
    std::map<std::string, std::string> node_selector;
    std::vector<bool> zones;
  };

  const NodeFacts& Resolve(size_t node) const;

  const ClusterView& cluster_;
  std::shared_ptr<const ClusterIndex> index_;  // checked against cluster_ when the plan starts
  std::unordered_map<std::string, std::vector<size_t>> placed_;
  mutable std::vector<NodeFacts> facts_;
  mutable std::vector<EligibilityClass> eligibility_;
};

// One request's view of its service across the cluster, earlier decisions in the plan included.
class RequestContext {
 public:
  RequestContext(const PlanState& plan, const PlacementRequest& request);

  const PlanState& plan() const { return plan_; }
  const PlacementRequest& request() const { return request_; }

  // Replicas of the request's service on the node.
  uint32_t ReplicasOn(size_t node) const;

  // Zone spread (only meaningful when SpreadsByZone()).
  bool SpreadsByZone() const { return spreads_by_zone_; }
  // The attribute is set but not one this pipeline knows: every node is rejected, loudly.
  bool UnknownSpreadAttribute() const { return unknown_spread_attribute_; }
  uint32_t ReplicasInZone(ZoneId zone) const;
  bool ZoneEligible(ZoneId zone) const;
  uint32_t MinEligibleZoneReplicas() const { return min_eligible_; }
  ZoneId MinEligibleZone() const { return min_zone_; }
  uint32_t EligibleZoneReplicas() const { return eligible_replicas_; }
  size_t EligibleZoneCount() const { return eligible_zones_; }

 private:
  const PlanState& plan_;
  const PlacementRequest& request_;
  std::vector<std::pair<size_t, uint32_t>> per_node_;  // sorted by node
  std::vector<uint32_t> per_zone_;                     // by ZoneId
  const std::vector<bool>* eligible_ = nullptr;
  bool spreads_by_zone_ = false;
  bool unknown_spread_attribute_ = false;
  uint32_t min_eligible_ = 0;
  ZoneId min_zone_ = kNoZone;
  uint32_t eligible_replicas_ = 0;
  size_t eligible_zones_ = 0;
};

}  // namespace phoenix::supervisor::placement
