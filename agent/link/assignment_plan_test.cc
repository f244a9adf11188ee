#include "agent/link/assignment_plan.h"

#include <gtest/gtest.h>

namespace phoenix::agent::link {
namespace {

AssignedGuest Assigned(const std::string& name) {
  AssignedGuest g;
  g.service = "web";
  g.spec.name = name;
  g.spec.image = "demo";
  return g;
}

std::vector<std::string> Names(const std::vector<GuestSpec>& specs) {
  std::vector<std::string> out;
  for (const GuestSpec& s : specs) out.push_back(s.name);
  return out;
}

struct Case {
  std::string name;
  std::vector<std::string> assigned;
  std::set<std::string> managed;
  std::set<std::string> present;
  std::vector<std::string> run, remove, forget, conflicts;
};

TEST(AgentLinkPlanTest, Table) {
  const Case cases[] = {
      {"fresh assignment runs everything", {"a", "b"}, {}, {}, {"a", "b"}, {}, {}, {}},
      {"converged assignment does nothing", {"a", "b"}, {"a", "b"}, {"a", "b"}, {}, {}, {}, {}},
      {"guest removed from the assignment is deleted",
       {"a"},
       {"a", "b"},
       {"a", "b"},
       {},
       {"b"},
       {},
       {}},
      {"empty assignment deletes every managed guest",
       {},
       {"a", "b"},
       {"a", "b"},
       {},
       {"a", "b"},
       {},
       {}},
      {"local guests are untouched", {"a"}, {"a"}, {"a", "local"}, {}, {}, {}, {}},
      {"a local guest with an assigned name is a conflict, not ours",
       {"a", "local"},
       {"a"},
       {"a", "local"},
       {},
       {},
       {},
       {"local"}},
      {"managed but missing (crash before create) runs again", {"a"}, {"a"}, {}, {"a"}, {}, {}, {}},
      {"managed guest deleted by hand is recreated",
       {"a", "b"},
       {"a", "b"},
       {"a"},
       {"b"},
       {},
       {},
       {}},
      {"managed, missing, unassigned (crash after delete) is forgotten",
       {"a"},
       {"a", "gone"},
       {"a"},
       {},
       {},
       {"gone"},
       {}},
      {"replacement generation: new name runs, old one goes",
       {"web-0-2"},
       {"web-0-1"},
       {"web-0-1"},
       {"web-0-2"},
       {"web-0-1"},
       {},
       {}},
      {"duplicate names count once", {"a", "a"}, {}, {}, {"a"}, {}, {}, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<AssignedGuest> assigned;
    for (const std::string& n : c.assigned) assigned.push_back(Assigned(n));
    ApplyPlan plan = PlanApply(assigned, c.managed, c.present);
    EXPECT_EQ(Names(plan.run), c.run);
    EXPECT_EQ(plan.remove, c.remove);
    EXPECT_EQ(plan.forget, c.forget);
    EXPECT_EQ(plan.conflicts, c.conflicts);
  }
}

TEST(AgentLinkPlanTest, RunCarriesTheAssignedSpec) {
  AssignedGuest g = Assigned("a");
  g.spec.memory_mib = 512;
  g.spec.env = {{"K", "V"}};
  ApplyPlan plan = PlanApply({g}, {}, {});
  ASSERT_EQ(plan.run.size(), 1u);
  EXPECT_EQ(plan.run[0], g.spec);
}

}  // namespace
}  // namespace phoenix::agent::link
