// The feasibility filter interface: one check of one node for one request, recording why when it
// says no. One class per file in filters/; pipeline.cc orders them.
//
// Threading: filters are stateless after construction; Feasible is const and may be called from
// any thread on distinct Explain objects.
#pragma once

#include <cstddef>
#include <string_view>

#include "supervisor/placement/explain.h"
#include "supervisor/placement/placement.h"
#include "supervisor/placement/plan_state.h"

namespace phoenix::supervisor::placement {

class Filter {
 public:
  virtual ~Filter() = default;
  // The filter's name (for tests and logs); a rejection's reason may be finer ("cpu", "memory").
  virtual std::string_view Name() const = 0;
  // True when the request may land on the node (cluster index `index`). On false the filter has
  // recorded exactly one rejection in `explain`.
  virtual bool Feasible(const NodeView& node, size_t index, const RequestContext& context,
                        Explain& explain) const = 0;
};

}  // namespace phoenix::supervisor::placement
