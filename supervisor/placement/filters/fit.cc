#include "supervisor/placement/filters/fit.h"

#include <string>

namespace phoenix::supervisor::placement {

bool FitFilter::Feasible(const NodeView& node, size_t index, const RequestContext& context,
                         Explain& explain) const {
  const Resources& need = context.request().need;
  Resources free = context.plan().Free(index);
  if (free.vcpus < need.vcpus) {
    explain.Reject(kCpuReason, node, [&] {
      return "needs " + std::to_string(need.vcpus) + " vCPU, " + std::to_string(free.vcpus) +
             " free";
    });
    return false;
  }
  if (free.memory_mib < need.memory_mib) {
    explain.Reject(kMemoryReason, node, [&] {
      return "needs " + FormatMiB(need.memory_mib) + ", " + FormatMiB(free.memory_mib) + " free";
    });
    return false;
  }
  return true;
}

}  // namespace phoenix::supervisor::placement
