// The pure half of applying a supervisor assignment: given the guests the assignment names, the
// guests the agent manages for the supervisor and the guests that exist on the node, decide what
// to run, what to delete and what to forget. No I/O, no protobuf; AssignmentApplier carries the
// plan out.
//
// Ownership model: a "managed" guest is one an assignment created (its name is in the persisted
// managed set from before it is created until after it is deleted). Every other guest is "local"
// (created through the agent API) and is never touched, even when an assignment names it.
//
// Thread-safety: plain values and a pure function.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "agent/guest/guest.h"

namespace phoenix::agent::link {

struct AssignedGuest {
  std::string service;
  uint32_t index = 0;
  uint64_t generation = 0;
  GuestSpec spec;  // spec.name is the guest's name on this node
  bool operator==(const AssignedGuest&) const = default;
};

struct ApplyPlan {
  std::vector<GuestSpec> run;          // assigned, absent: mark managed, then create
  std::vector<std::string> remove;     // managed, present, no longer assigned ("stale"): delete
  std::vector<std::string> forget;     // managed, absent, not assigned: drop from the managed set
  std::vector<std::string> conflicts;  // assigned, but a local guest holds the name: left alone
  bool operator==(const ApplyPlan&) const = default;
};

// Every list is sorted by name. Assigned guests with a duplicate name after the first are ignored
// (the supervisor never sends them; a name is one guest).
ApplyPlan PlanApply(const std::vector<AssignedGuest>& assigned,
                    const std::set<std::string>& managed, const std::set<std::string>& present);

}  // namespace phoenix::agent::link
