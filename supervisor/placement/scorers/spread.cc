#include "supervisor/placement/scorers/spread.h"

#include "supervisor/placement/scorers/free_fraction.h"

namespace phoenix::supervisor::placement {

double SpreadScorer::Score(const NodeView& /*node*/, size_t index,
                           const RequestContext& context) const {
  return 2 * FreeFractionAfter(index, context) - 1;
}

}  // namespace phoenix::supervisor::placement
