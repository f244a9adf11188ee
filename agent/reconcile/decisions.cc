#include "agent/reconcile/decisions.h"

#include <algorithm>
#include <map>
#include <set>

namespace phoenix::agent {

std::chrono::milliseconds RestartBackoff(const RestartSpec& spec, uint32_t consecutive_failures) {
  if (consecutive_failures <= 1) return std::chrono::milliseconds(0);
  uint64_t delay = spec.initial_backoff_ms;
  for (uint32_t i = 2; i < consecutive_failures && delay < spec.max_backoff_ms; ++i) delay *= 2;
  return std::chrono::milliseconds(std::min<uint64_t>(delay, spec.max_backoff_ms));
}

RestartDecision DecideRestart(const RestartSpec& spec, ExitCause cause,
                              uint32_t consecutive_failures) {
  RestartDecision d;
  const bool failure = cause != ExitCause::kExited;
  d.state_if_not = failure ? GuestState::kFailed : GuestState::kStopped;
  switch (spec.policy) {
    case RestartPolicy::kAlways:
      d.restart = true;
      break;
    case RestartPolicy::kOnFailure:
      d.restart = failure;
      break;
    case RestartPolicy::kNever:
      d.restart = false;
      break;
  }
  if (d.restart) d.delay = RestartBackoff(spec, consecutive_failures);
  return d;
}

AdoptionPlan PlanAdoption(const std::vector<GuestRecord>& records,
                          const std::vector<InstanceStatus>& instances) {
  std::map<std::string, const InstanceStatus*> by_name;
  for (const InstanceStatus& i : instances) by_name[i.instance] = &i;

  AdoptionPlan plan;
  std::set<std::string> kept;
  for (const GuestRecord& r : records) {
    auto it = r.instance.empty() ? by_name.end() : by_name.find(r.instance);
    const bool found = it != by_name.end() && it->second->guest_id == r.id;
    if (r.desired_running && found && it->second->running) {
      plan.adopt.push_back(r.id);
      kept.insert(r.instance);
    } else if (r.desired_running && r.state != GuestState::kFailed) {
      plan.restart.push_back(r.id);
    }
  }
  std::set<std::string> ours;
  for (const GuestRecord& r : records) ours.insert(r.id);
  for (const InstanceStatus& i : instances) {
    // Only instances of our own guests are ours to remove: several agents (a test's, a
    // quickstart's) may share one libvirtd, and a guest's instance is destroyed before its record
    // is deleted, so an unknown guest id belongs to someone else.
    if (ours.contains(i.guest_id) && !kept.contains(i.instance)) plan.destroy.push_back(i.instance);
  }
  return plan;
}

}  // namespace phoenix::agent
