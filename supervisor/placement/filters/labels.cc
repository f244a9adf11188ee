#include "supervisor/placement/filters/labels.h"

#include <string>

namespace phoenix::supervisor::placement {

bool LabelsFilter::Passes(const NodeView& node, const PlacementRequest& request) {
  for (const auto& [key, value] : request.node_selector) {
    auto it = node.labels.find(key);
    if (it == node.labels.end() || it->second != value) return false;
  }
  return true;
}

bool LabelsFilter::Feasible(const NodeView& node, size_t /*index*/, const RequestContext& context,
                            Explain& explain) const {
  if (Passes(node, context.request())) return true;
  explain.Reject(kReason, node, [&] {
    // Name the first label that does not match: enough to see what to fix.
    for (const auto& [key, value] : context.request().node_selector) {
      auto it = node.labels.find(key);
      if (it == node.labels.end()) return "no label " + key + " (wants " + key + "=" + value + ")";
      if (it->second != value) return key + "=" + it->second + ", wants " + key + "=" + value;
    }
    return std::string("labels do not match");
  });
  return false;
}

}  // namespace phoenix::supervisor::placement
