#include "supervisor/placement/scorers/zone_spread.h"

#include <algorithm>

namespace phoenix::supervisor::placement {

double ZoneSpreadScorer::Score(const NodeView& /*node*/, size_t index,
                               const RequestContext& context) const {
  ZoneId zone = context.plan().ZoneOf(index);
  if (zone == kNoZone || context.EligibleZoneCount() == 0) return 0;
  double desired = static_cast<double>(context.EligibleZoneReplicas() + 1) /
                   static_cast<double>(context.EligibleZoneCount());
  double used = context.ReplicasInZone(zone);
  return std::clamp((desired - used) / desired, -1.0, 1.0);
}

}  // namespace phoenix::supervisor::placement
