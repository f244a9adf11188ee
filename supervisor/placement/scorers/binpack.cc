#include "supervisor/placement/scorers/binpack.h"

#include "supervisor/placement/scorers/free_fraction.h"

namespace phoenix::supervisor::placement {

double BinpackScorer::Score(const NodeView& /*node*/, size_t index,
                            const RequestContext& context) const {
  return 1 - 2 * FreeFractionAfter(index, context);
}

}  // namespace phoenix::supervisor::placement
