#include "supervisor/placement/scorers/reschedule_penalty.h"

namespace phoenix::supervisor::placement {

double ReschedulePenaltyScorer::Score(const NodeView& /*node*/, size_t index,
                                      const RequestContext& context) const {
  return context.request().leaving_node == index ? -1.0 : 0.0;
}

}  // namespace phoenix::supervisor::placement
