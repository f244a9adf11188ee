#include "supervisor/placement/plan_state.h"

#include <algorithm>

#include "supervisor/placement/filters/labels.h"
#include "supervisor/placement/filters/node_state.h"

namespace phoenix::supervisor::placement {
namespace {

uint64_t Sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

PlanState::PlanState(const ClusterView& cluster)
    : cluster_(cluster), index_(ClusterIndex::For(cluster)), facts_(cluster.nodes.size()) {}

const NodeFacts& PlanState::Resolve(size_t node) const {
  const NodeView& view = cluster_.nodes[node];
  NodeFacts& facts = facts_[node];
  facts.memory_capacity = view.capacity.memory_mib;
  facts.memory_free = Sub(view.capacity.memory_mib, view.allocated.memory_mib);
  facts.vcpu_capacity = view.capacity.vcpus;
  facts.vcpu_free = static_cast<uint32_t>(Sub(view.capacity.vcpus, view.allocated.vcpus));
  facts.runtimes = 0;
  for (RuntimeKind kind : view.runtimes) facts.runtimes |= RuntimeBit(kind);
  facts.ready = NodeStateFilter::Passes(view);
  facts.resolved = true;
  return facts;
}

const std::vector<bool>& PlanState::EligibleZones(const PlacementRequest& request) const {
  for (const EligibilityClass& entry : eligibility_) {
    if (entry.runtime == request.runtime && entry.node_selector == request.node_selector) {
      return entry.zones;
    }
  }
  EligibilityClass entry{request.runtime, request.node_selector, {}};
  entry.zones.assign(index_->ZoneCount(), false);
  for (ZoneId zone = 0; zone < index_->ZoneCount(); ++zone) {
    for (size_t i : index_->NodesIn(zone)) {
      const NodeView& node = cluster_.nodes[i];
      if (NodeStateFilter::Passes(node) && node.runtimes.contains(request.runtime) &&
          LabelsFilter::Passes(node, request)) {
        entry.zones[zone] = true;
        break;
      }
    }
  }
  eligibility_.push_back(std::move(entry));
  return eligibility_.back().zones;
}

const std::vector<size_t>& PlanState::PlacedFor(const std::string& service) const {
  static const std::vector<size_t> kNone;
  auto it = placed_.find(service);
  return it == placed_.end() ? kNone : it->second;
}

void PlanState::Commit(const PlacementRequest& request, size_t node) {
  Facts(node);  // resolve before changing
  NodeFacts& facts = facts_[node];
  facts.vcpu_free = static_cast<uint32_t>(Sub(facts.vcpu_free, request.need.vcpus));
  facts.memory_free = Sub(facts.memory_free, request.need.memory_mib);
  placed_[request.service].push_back(node);
}

RequestContext::RequestContext(const PlanState& plan, const PlacementRequest& request)
    : plan_(plan), request_(request) {
  const std::vector<size_t>& placed = plan.PlacedFor(request.service);
  std::vector<size_t> nodes;
  nodes.reserve(request.service_replica_nodes.size() + placed.size());
  for (size_t node : request.service_replica_nodes) {
    if (node < plan.size()) nodes.push_back(node);  // a stale index names no node: ignore it
  }
  nodes.insert(nodes.end(), placed.begin(), placed.end());
  std::sort(nodes.begin(), nodes.end());
  for (size_t node : nodes) {
    if (!per_node_.empty() && per_node_.back().first == node) {
      ++per_node_.back().second;
    } else {
      per_node_.emplace_back(node, 1);
    }
  }

  if (request.spread_attribute.empty()) return;
  if (request.spread_attribute != kZoneAttribute) {
    unknown_spread_attribute_ = true;
    return;
  }
  spreads_by_zone_ = true;
  eligible_ = &plan.EligibleZones(request);  // interns every zone of the cluster
  per_zone_.assign(plan.ZoneCount(), 0);
  for (const auto& [node, count] : per_node_) {
    ZoneId zone = plan.ZoneOf(node);
    if (zone != kNoZone) per_zone_[zone] += count;
  }
  bool any = false;
  for (ZoneId zone = 0; zone < per_zone_.size(); ++zone) {
    if (!ZoneEligible(zone)) continue;
    ++eligible_zones_;
    eligible_replicas_ += per_zone_[zone];
    if (!any || per_zone_[zone] < min_eligible_) {
      min_eligible_ = per_zone_[zone];
      min_zone_ = zone;
      any = true;
    }
  }
}

uint32_t RequestContext::ReplicasOn(size_t node) const {
  auto it = std::lower_bound(per_node_.begin(), per_node_.end(), node,
                             [](const auto& entry, size_t n) { return entry.first < n; });
  return it != per_node_.end() && it->first == node ? it->second : 0;
}

uint32_t RequestContext::ReplicasInZone(ZoneId zone) const {
  return zone < per_zone_.size() ? per_zone_[zone] : 0;
}

bool RequestContext::ZoneEligible(ZoneId zone) const {
  return eligible_ != nullptr && zone < eligible_->size() && (*eligible_)[zone];
}

}  // namespace phoenix::supervisor::placement
