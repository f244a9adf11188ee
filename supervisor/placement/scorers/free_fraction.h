// The share of a node's capacity still free once the replica is placed there, averaged over vCPUs
// and memory, in [0, 1]. What the spread and binpack scorers rank by (in opposite directions).
#pragma once

#include <cstddef>

#include "supervisor/placement/plan_state.h"

namespace phoenix::supervisor::placement {

double FreeFractionAfter(size_t index, const RequestContext& context);

}  // namespace phoenix::supervisor::placement
