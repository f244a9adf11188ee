// AssignmentApplier: carries out the supervisor's assignment on this node. It fences (ignores any
// version not above the applied one), persists the assignment in the AgentStore *before* acting,
// then converges the node's managed guests onto it through the GuestManager: runs the missing
// ones, deletes the stale ones (with an agent event saying so) and never touches local guests
// (those created through the agent API). The decision itself is PlanApply (assignment_plan.h).
//
// Crash safety: the managed set is persisted (AgentStore::AddManagedGuest before a guest is
// created, RemoveManagedGuest after it is deleted) and Reapply() converges again on the persisted
// assignment, so an agent killed at any point converges on restart, and guests keep running while
// the supervisor is away (static stability). Applying is idempotent.
//
// Threading: Load, Apply and Reapply block on the GuestManager's bridge: call them from one
// non-loop thread at a time (the link's apply thread). applied_version() and managed() may be
// called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/link/assignment_plan.h"
#include "agent/reconcile/guest_manager.h"
#include "agent/state/agent_store.h"
#include "phoenix/v1/supervisor.pb.h"
#include "proto/support/error.h"
#include "proto/support/event_hub.h"

namespace phoenix::agent::link {

// An assigned guest this node does not run, and why.
struct Refusal {
  std::string guest;  // empty when the assignment did not even name it
  std::string reason;
};

// The assigned guests an assignment carries, converted and validated (host ports cleared: the
// agent picks them). Guests that do not convert or validate are left out and described in
// `refused`.
struct DecodedAssignment {
  uint64_t version = 0;
  std::vector<AssignedGuest> guests;
  std::vector<Refusal> refused;
};
DecodedAssignment DecodeAssignment(const v1::Assignment& assignment);

class AssignmentApplier {
 public:
  struct Report {
    uint64_t version = 0;  // the assignment converged on (0: none yet)
    bool fenced = false;   // ignored: its version was not above the applied one
    int ran = 0;
    int removed = 0;
    int forgotten = 0;
    std::vector<std::string> errors;  // per guest; the next Reapply retries
  };

  AssignmentApplier(GuestManager& guests, AgentStore& store, EventHub& hub);
  AssignmentApplier(const AssignmentApplier&) = delete;
  AssignmentApplier& operator=(const AssignmentApplier&) = delete;

  // Reads the persisted applied version and managed set. Call once, before Apply/Reapply.
  [[nodiscard]] Result<void> Load();
  // Fencing, persisting, converging. An error means nothing was persisted (and nothing done).
  [[nodiscard]] Result<Report> Apply(const v1::Assignment& assignment);
  // Converges again on the persisted assignment (agent start, retries after failures, a managed
  // guest deleted behind the supervisor's back). Without a persisted assignment it does nothing.
  [[nodiscard]] Result<Report> Reapply();

  uint64_t applied_version() const;
  std::set<std::string> managed() const;
  // The assigned guests the last converge could not run (invalid spec, unknown image, no room, a
  // local guest holding the name), by name: the link reports them up so the supervisor shows why
  // a replica does not run instead of leaving it ASSIGNED without a word.
  std::map<std::string, std::string> refused() const;

 private:
  Report Converge(const DecodedAssignment& assignment);
  void RunGuest(const GuestSpec& spec, Report& report);
  void RemoveGuest(const std::string& name, uint64_t version, Report& report);
  void Forget(const std::string& name, Report& report);
  bool Unmark(const std::string& name, Report& report);
  // `refusal`: the guest is not running because of this (reported up), not a cleanup failure.
  void Failed(const std::string& name, const std::string& error, Report& report,
              bool refusal = true);
  void Emit(EventType type, const std::string& guest, std::string message);

  GuestManager& guests_;
  AgentStore& store_;
  EventHub& hub_;

  mutable std::mutex mu_;
  uint64_t applied_version_ = 0;                 // guarded by mu_
  std::set<std::string> managed_;                // guarded by mu_; mirrors the store's managed set
  std::map<std::string, std::string> refused_;   // guarded by mu_; the last converge's refusals
  std::map<std::string, std::string> refusing_;  // apply thread: the converge in progress
  // Apply thread only: the last error logged per guest, so a retried failure logs once.
  std::map<std::string, std::string> logged_errors_;
};

}  // namespace phoenix::agent::link
