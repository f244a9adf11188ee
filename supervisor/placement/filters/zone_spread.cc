#include "supervisor/placement/filters/zone_spread.h"

#include <algorithm>
#include <string>

namespace phoenix::supervisor::placement {

bool ZoneSpreadFilter::Feasible(const NodeView& node, size_t index, const RequestContext& context,
                                Explain& explain) const {
  if (context.UnknownSpreadAttribute()) {
    explain.Reject(kReason, node, [&] {
      return "cannot spread by '" + context.request().spread_attribute + "' (only zone)";
    });
    return false;
  }
  if (!context.SpreadsByZone()) return true;
  ZoneId zone = context.plan().ZoneOf(index);
  if (zone == kNoZone) {
    explain.Reject(kReason, node, [] { return std::string("node has no zone"); });
    return false;
  }
  uint32_t max_skew = std::max<uint32_t>(context.request().max_skew, 1);
  uint32_t after = context.ReplicasInZone(zone) + 1;
  if (after <= context.MinEligibleZoneReplicas() + max_skew) return true;
  explain.Reject(kReason, node, [&] {
    return "zone " + std::string(context.plan().ZoneName(zone)) + " would have " +
           std::to_string(after) + ", zone " +
           std::string(context.plan().ZoneName(context.MinEligibleZone())) + " has " +
           std::to_string(context.MinEligibleZoneReplicas()) + " (max skew " +
           std::to_string(max_skew) + ")";
  });
  return false;
}

}  // namespace phoenix::supervisor::placement
