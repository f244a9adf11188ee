#include "supervisor/placement/scorers/free_fraction.h"

#include <algorithm>

namespace phoenix::supervisor::placement {
namespace {

double Fraction(double free, double need, double capacity) {
  if (capacity <= 0) return 0;
  return std::clamp((free - need) / capacity, 0.0, 1.0);
}

}  // namespace

double FreeFractionAfter(size_t index, const RequestContext& context) {
  const NodeFacts& facts = context.plan().Facts(index);
  const Resources& need = context.request().need;
  Resources free = context.plan().Free(index);
  double cpu = Fraction(free.vcpus, need.vcpus, facts.vcpu_capacity);
  double memory =
      Fraction(static_cast<double>(free.memory_mib), static_cast<double>(need.memory_mib),
               static_cast<double>(facts.memory_capacity));
  return (cpu + memory) / 2;
}

}  // namespace phoenix::supervisor::placement
