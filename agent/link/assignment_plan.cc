#include "agent/link/assignment_plan.h"

#include <algorithm>
#include <map>

namespace phoenix::agent::link {

ApplyPlan PlanApply(const std::vector<AssignedGuest>& assigned,
                    const std::set<std::string>& managed, const std::set<std::string>& present) {
  ApplyPlan plan;
  std::map<std::string, const GuestSpec*> wanted;  // by name, sorted
  for (const AssignedGuest& g : assigned) wanted.emplace(g.spec.name, &g.spec);

  for (const auto& [name, spec] : wanted) {
    if (!present.contains(name)) {
      plan.run.push_back(*spec);
    } else if (!managed.contains(name)) {
      plan.conflicts.push_back(name);
    }
    // Present and managed: already running for the supervisor. Specs never change under one name
    // (a new placement is a new generation, hence a new name), so there is nothing to update.
  }
  for (const std::string& name : managed) {
    if (wanted.contains(name)) continue;
    if (present.contains(name)) {
      plan.remove.push_back(name);
    } else {
      plan.forget.push_back(name);
    }
  }
  return plan;
}

}  // namespace phoenix::agent::link
