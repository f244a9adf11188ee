#include "agent/link/assignment_applier.h"

#include <spdlog/spdlog.h>

namespace phoenix::agent::link {

DecodedAssignment DecodeAssignment(const v1::Assignment& assignment) {
  DecodedAssignment out;
  out.version = assignment.version();
  std::set<std::string> names;
  for (const v1::AssignedGuest& g : assignment.guests()) {
    const std::string& name = g.spec().name();
    auto spec = spec::GuestSpecFromProto(g.spec());
    if (!spec) {
      out.refused.push_back({name, spec.error().ToString()});
      continue;
    }
    // The agent picks host ports; a supervisor-chosen one could collide with a local guest's.
    for (PortMapping& p : spec->ports) p.host_port = 0;
    if (auto ok = spec::ValidateGuestSpec(*spec); !ok) {
      out.refused.push_back({name, ok.error().ToString()});
      continue;
    }
    if (!names.insert(name).second) {
      // The first one runs under this name: not reported up as a refusal of it.
      out.refused.push_back({"", "\"" + name + "\" appears twice; the first one counts"});
      continue;
    }
    out.guests.push_back(AssignedGuest{g.service(), g.index(), g.generation(), std::move(*spec)});
  }
  return out;
}

AssignmentApplier::AssignmentApplier(GuestManager& guests, AgentStore& store, EventHub& hub)
    : guests_(guests), store_(store), hub_(hub) {}

Result<void> AssignmentApplier::Load() {
  auto stored = store_.LoadAssignment();
  if (!stored) return std::unexpected(stored.error().Wrap("loading the supervisor's assignment"));
  auto managed = store_.ManagedGuests();
  if (!managed) return std::unexpected(managed.error().Wrap("loading the managed guests"));
  std::lock_guard lock(mu_);
  applied_version_ = stored->has_value() ? (*stored)->version : 0;
  managed_ = std::move(*managed);
  return {};
}

uint64_t AssignmentApplier::applied_version() const {
  std::lock_guard lock(mu_);
  return applied_version_;
}

std::set<std::string> AssignmentApplier::managed() const {
  std::lock_guard lock(mu_);
  return managed_;
}

std::map<std::string, std::string> AssignmentApplier::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

Result<AssignmentApplier::Report> AssignmentApplier::Apply(const v1::Assignment& assignment) {
  const uint64_t applied = applied_version();
  if (assignment.version() <= applied) {
    // Fencing: an old supervisor (or a delayed message) must never undo a newer decision.
    spdlog::warn("supervisor assignment version {} ignored: version {} is already applied",
                 assignment.version(), applied);
    Report report;
    report.version = applied;
    report.fenced = true;
    return report;
  }
  std::string payload;
  if (!assignment.SerializeToString(&payload)) {
    return Internal("encoding assignment version " + std::to_string(assignment.version()));
  }
  // Persist before acting: after a crash from here on, Reapply converges on this assignment.
  if (auto r = store_.SaveAssignment({assignment.version(), payload}); !r) {
    return std::unexpected(
        r.error().Wrap("persisting assignment version " + std::to_string(assignment.version())));
  }
  {
    std::lock_guard lock(mu_);
    applied_version_ = assignment.version();
  }
  DecodedAssignment decoded = DecodeAssignment(assignment);
  spdlog::info("applying supervisor assignment version {} ({} guests)", decoded.version,
               decoded.guests.size());
  return Converge(decoded);
}

Result<AssignmentApplier::Report> AssignmentApplier::Reapply() {
  auto stored = store_.LoadAssignment();
  if (!stored) return std::unexpected(stored.error().Wrap("loading the supervisor's assignment"));
  if (!stored->has_value()) return Report{};
  v1::Assignment assignment;
  if (!assignment.ParseFromString((*stored)->payload)) {
    return Internal("the stored assignment version " + std::to_string((*stored)->version) +
                    " does not decode");
  }
  // The row's version is the one fencing uses; the payload carries the same one.
  assignment.set_version((*stored)->version);
  Report report = Converge(DecodeAssignment(assignment));
  return report;
}

AssignmentApplier::Report AssignmentApplier::Converge(const DecodedAssignment& assignment) {
  Report report;
  report.version = assignment.version;
  refusing_.clear();
  for (const Refusal& r : assignment.refused) {
    if (r.guest.empty()) {
      report.errors.push_back("assignment " + std::to_string(assignment.version) + ": " + r.reason);
      spdlog::error("assignment {}: {}", assignment.version, r.reason);
    } else {
      Failed(r.guest, "not accepted: " + r.reason, report);
    }
  }
  std::set<std::string> present;
  for (const GuestRecord& g : guests_.List()) present.insert(g.spec.name);
  ApplyPlan plan = PlanApply(assignment.guests, managed(), present);

  for (const std::string& name : plan.conflicts) {
    Failed(name,
           "a local guest (created through the agent API) has this name; leaving it alone and "
           "not running the assigned one",
           report);
  }
  for (const GuestSpec& spec : plan.run) RunGuest(spec, report);
  for (const std::string& name : plan.remove) RemoveGuest(name, assignment.version, report);
  for (const std::string& name : plan.forget) Forget(name, report);
  // Guests that converged forget their logged errors, so a later failure is logged again.
  std::set<std::string> failing;
  for (const auto& [name, error] : logged_errors_) {
    bool still = false;
    for (const std::string& e : report.errors) still = still || e.starts_with(name + ": ");
    if (still) failing.insert(name);
  }
  std::erase_if(logged_errors_, [&](const auto& kv) { return !failing.contains(kv.first); });
  {
    std::lock_guard lock(mu_);
    refused_ = std::move(refusing_);
  }
  refusing_.clear();
  if (report.ran + report.removed + report.forgotten > 0) {
    spdlog::info("assignment {}: {} guests started, {} stale guests deleted, {} forgotten",
                 assignment.version, report.ran, report.removed, report.forgotten);
  }
  return report;
}

void AssignmentApplier::RunGuest(const GuestSpec& spec, Report& report) {
  const std::string& name = spec.name;
  // Managed from before it exists: a crash right after Run leaves a guest the set already owns.
  if (auto r = store_.AddManagedGuest(name); !r) {
    return Failed(name, "marking it managed: " + r.error().ToString(), report);
  }
  {
    std::lock_guard lock(mu_);
    managed_.insert(name);
  }
  auto rec = guests_.Run(spec);
  if (rec) {
    ++report.ran;
    return;
  }
  // Not created: it is not ours. (kAlreadyExists: a local guest took the name since we listed.)
  if (auto r = store_.RemoveManagedGuest(name); r) {
    std::lock_guard lock(mu_);
    managed_.erase(name);
  }
  Failed(name, "running it: " + rec.error().ToString(), report);
}

void AssignmentApplier::RemoveGuest(const std::string& name, uint64_t version, Report& report) {
  Emit(EventType::kGuestStopped, name,
       "stale: not in the supervisor's assignment version " + std::to_string(version) +
           "; deleting it");
  auto r = guests_.Delete(name);
  if (!r && r.error().code != ErrorCode::kNotFound) {
    return Failed(name, "deleting the stale guest: " + r.error().ToString(), report, false);
  }
  // Managed until after it is deleted: a crash before this line leaves a name Forget drops.
  if (Unmark(name, report)) ++report.removed;
}

void AssignmentApplier::Forget(const std::string& name, Report& report) {
  if (Unmark(name, report)) ++report.forgotten;
}

bool AssignmentApplier::Unmark(const std::string& name, Report& report) {
  if (auto r = store_.RemoveManagedGuest(name); !r) {
    Failed(name, "unmarking it as managed: " + r.error().ToString(), report, false);
    return false;
  }
  std::lock_guard lock(mu_);
  managed_.erase(name);
  return true;
}

void AssignmentApplier::Failed(const std::string& name, const std::string& error, Report& report,
                               bool refusal) {
  report.errors.push_back(name + ": " + error);
  if (refusal) refusing_[name] = error;
  auto [it, inserted] = logged_errors_.try_emplace(name, error);
  if (inserted || it->second != error) {
    it->second = error;
    spdlog::error("assigned guest {}: {}", name, error);
  }
}

void AssignmentApplier::Emit(EventType type, const std::string& guest, std::string message) {
  spdlog::info("{}: {}", guest, message);
  auto stored = store_.AppendEvent(EventRecord{0, Clock::now(), type, guest, std::move(message)});
  if (!stored) {
    spdlog::error("recording event: {}", stored.error().ToString());
    return;
  }
  hub_.Published(stored->sequence);
}

}  // namespace phoenix::agent::link
