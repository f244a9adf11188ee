// The one place the placement chain is built and ordered (see placement.h for the pipeline).
#include <cstddef>

#include "supervisor/placement/filters/distinct_hosts.h"
#include "supervisor/placement/filters/fit.h"
#include "supervisor/placement/filters/front_door_port.h"
#include "supervisor/placement/filters/labels.h"
#include "supervisor/placement/filters/node_state.h"
#include "supervisor/placement/filters/runtime.h"
#include "supervisor/placement/filters/zone_spread.h"
#include "supervisor/placement/placement.h"
#include "supervisor/placement/plan_state.h"
#include "supervisor/placement/scorers/anti_affinity.h"
#include "supervisor/placement/scorers/binpack.h"
#include "supervisor/placement/scorers/image_locality.h"
#include "supervisor/placement/scorers/reschedule_penalty.h"
#include "supervisor/placement/scorers/spread.h"
#include "supervisor/placement/scorers/zone_spread.h"
#include "supervisor/placement/select.h"

namespace phoenix::supervisor::placement {
namespace {

// Filters, cheapest and most decisive first:
//  1. node state, runtime, labels, front-door port look only at the node itself (an enum, a tiny
//  set, usually an
//     empty selector) and reject whole classes of nodes (DOWN, drained, wrong runtime), so most
//     rejected nodes cost a compare or two. They also give the most fundamental reason: a DOWN
//     node is reported as DOWN, not as short of memory.
//  2. fit needs the plan's resource delta for the node (a hash lookup).
//  3. distinct hosts and zone spread need the service's replicas per node / zone, which only
//     matter for nodes that could otherwise run the replica.
// Scorer weights: zone spread counts double because keeping a zone's failure from taking more than
// its share of a service matters more than packing; spread/binpack, anti-affinity and image
// locality are tie-breakers of decreasing importance. The reschedule penalty's weight is larger
// than all the others together, so a replacement goes back to the node it is leaving only when no
// other node is feasible.
constexpr double kZoneSpreadWeight = 2.0;
constexpr double kStrategyWeight = 1.0;
constexpr double kAntiAffinityWeight = 1.0;
constexpr double kImageLocalityWeight = 0.5;
constexpr double kReschedulePenaltyWeight = 10.0;

struct Pipeline {
  NodeStateFilter node_state;
  RuntimeFilter runtime;
  LabelsFilter labels;
  FrontDoorPortFilter front_door_port;
  FitFilter fit;
  DistinctHostsFilter distinct_hosts;
  ZoneSpreadFilter zone_spread;

  ZoneSpreadScorer zone_spread_score{kZoneSpreadWeight};
  SpreadScorer spread_score{kStrategyWeight};
  BinpackScorer binpack_score{kStrategyWeight};
  AntiAffinityScorer anti_affinity_score{kAntiAffinityWeight};
  ImageLocalityScorer image_locality_score{kImageLocalityWeight};
  ReschedulePenaltyScorer reschedule_penalty_score{kReschedulePenaltyWeight};

  Chain chain{
      {&node_state, &runtime, &labels, &front_door_port, &fit, &distinct_hosts, &zone_spread},
      {&zone_spread_score, &spread_score, &binpack_score, &anti_affinity_score,
       &image_locality_score, &reschedule_penalty_score},
  };

  Pipeline() = default;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
};

}  // namespace

Plan Place(const ClusterView& cluster, const std::vector<PlacementRequest>& requests,
           const Options& options) {
  const Pipeline pipeline;
  PlanState plan(cluster);
  const size_t limit = EffectiveLimit(options.limit, cluster.nodes.size());

  Plan result;
  result.decisions.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const PlacementRequest& request = requests[i];
    Decision decision;
    {
      const RequestContext context(plan, request);
      decision = Select(pipeline.chain, context, limit, VisitKey(options.seed, i));
    }
    if (decision.node) plan.Commit(request, *decision.node);
    result.decisions.push_back(std::move(decision));
  }
  return result;
}

}  // namespace phoenix::supervisor::placement
