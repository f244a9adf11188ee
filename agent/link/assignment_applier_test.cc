#include "agent/link/assignment_applier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/link/testing/agent_harness.h"

namespace phoenix::agent::link {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

v1::Assignment MakeAssignment(uint64_t version, const std::vector<std::string>& names) {
  v1::Assignment a;
  a.set_version(version);
  for (const std::string& name : names) {
    v1::AssignedGuest* g = a.add_guests();
    g->set_service("web");
    g->set_generation(1);
    g->mutable_spec()->set_name(name);
    g->mutable_spec()->set_image("demo");
    g->mutable_spec()->set_memory_mib(256);
    auto* port = g->mutable_spec()->add_ports();
    port->set_guest_port(80);
    port->set_host_port(18080);  // the supervisor's value is ignored: the agent picks
  }
  return a;
}

class AgentLinkApplierTest : public ::testing::Test {
 protected:
  void SetUp() override { NewApplier(); }

  void NewApplier() {
    applier_ = std::make_unique<AssignmentApplier>(agent_.manager(), agent_.store(), agent_.hub());
    ASSERT_TRUE(applier_->Load());
  }

  AssignmentApplier::Report MustApply(const v1::Assignment& a) {
    auto r = applier_->Apply(a);
    EXPECT_TRUE(r) << r.error().ToString();
    return r.value_or(AssignmentApplier::Report{});
  }

  std::set<std::string> GuestNames() {
    std::set<std::string> out;
    for (const GuestRecord& g : agent_.manager().List()) out.insert(g.spec.name);
    return out;
  }

  std::set<std::string> StoredManaged() { return agent_.store().ManagedGuests().value(); }

  uint64_t StoredVersion() {
    auto a = agent_.store().LoadAssignment();
    return a && a->has_value() ? (*a)->version : 0;
  }

  testing::AgentHarness agent_;
  std::unique_ptr<AssignmentApplier> applier_;
};

TEST_F(AgentLinkApplierTest, FreshAssignmentRunsEveryGuestAndPersistsFirst) {
  auto report = MustApply(MakeAssignment(1, {"web-0-1", "web-1-1"}));
  EXPECT_FALSE(report.fenced);
  EXPECT_EQ(report.ran, 2);
  EXPECT_THAT(report.errors, IsEmpty());
  EXPECT_TRUE(agent_.WaitRunning("web-0-1"));
  EXPECT_TRUE(agent_.WaitRunning("web-1-1"));
  EXPECT_EQ(applier_->applied_version(), 1u);
  EXPECT_EQ(StoredVersion(), 1u);
  EXPECT_THAT(StoredManaged(), UnorderedElementsAre("web-0-1", "web-1-1"));
  EXPECT_EQ(applier_->managed(), StoredManaged());
  auto g = agent_.manager().Get("web-0-1");
  ASSERT_TRUE(g);
  EXPECT_NE(g->spec.ports.at(0).host_port, 0);
}

TEST_F(AgentLinkApplierTest, VersionsNotAboveTheAppliedOneAreFenced) {
  MustApply(MakeAssignment(5, {"a"}));
  for (uint64_t stale : {5u, 4u, 0u}) {
    SCOPED_TRACE(stale);
    auto report = MustApply(MakeAssignment(stale, {"b"}));
    EXPECT_TRUE(report.fenced);
    EXPECT_EQ(report.ran, 0);
  }
  EXPECT_EQ(GuestNames(), (std::set<std::string>{"a"}));
  EXPECT_EQ(StoredVersion(), 5u);
  EXPECT_EQ(applier_->applied_version(), 5u);
}

TEST_F(AgentLinkApplierTest, GuestLeftOutOfTheAssignmentIsDeletedWithAStaleEvent) {
  MustApply(MakeAssignment(1, {"a", "b"}));
  ASSERT_TRUE(agent_.WaitRunning("b"));
  auto report = MustApply(MakeAssignment(2, {"a"}));
  EXPECT_EQ(report.removed, 1);
  EXPECT_EQ(GuestNames(), (std::set<std::string>{"a"}));
  EXPECT_THAT(StoredManaged(), UnorderedElementsAre("a"));
  auto events = agent_.store().EventsSince(1, 1000);
  ASSERT_TRUE(events);
  bool stale_event = false;
  for (const EventRecord& e : *events) {
    if (e.guest == "b" && e.message.find("stale") != std::string::npos) stale_event = true;
  }
  EXPECT_TRUE(stale_event) << "deleting a stale guest is announced as an agent event";
}

TEST_F(AgentLinkApplierTest, LocalGuestsAreNeverTouched) {
  GuestSpec local;
  local.name = "local";
  local.image = "demo";
  auto created = agent_.manager().Run(local);
  ASSERT_TRUE(created) << created.error().ToString();

  MustApply(MakeAssignment(1, {"a"}));
  // An assignment naming the local guest does not adopt it.
  auto conflict = MustApply(MakeAssignment(2, {"a", "local"}));
  ASSERT_EQ(conflict.errors.size(), 1u);
  EXPECT_THAT(conflict.errors[0], HasSubstr("local guest"));
  EXPECT_THAT(StoredManaged(), UnorderedElementsAre("a"));
  // An empty assignment deletes every managed guest, and only those.
  auto report = MustApply(MakeAssignment(3, {}));
  EXPECT_EQ(report.removed, 1);
  EXPECT_EQ(GuestNames(), (std::set<std::string>{"local"}));
  EXPECT_EQ(agent_.manager().Get("local")->id, created->id);
  EXPECT_THAT(StoredManaged(), IsEmpty());
}

TEST_F(AgentLinkApplierTest, InvalidAssignedGuestIsSkippedAndTheRestRuns) {
  v1::Assignment a = MakeAssignment(1, {"good", "Bad_Name"});
  auto* unknown_image = a.add_guests();
  unknown_image->mutable_spec()->set_name("noimage");
  unknown_image->mutable_spec()->set_image("nope");
  auto report = MustApply(a);
  EXPECT_EQ(report.ran, 1);
  EXPECT_EQ(report.errors.size(), 2u);
  EXPECT_EQ(GuestNames(), (std::set<std::string>{"good"}));
  // Each refusal is kept, by name, for the link to report up.
  auto refused = applier_->refused();
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_THAT(refused["Bad_Name"], HasSubstr("spec.name"));
  EXPECT_THAT(refused["noimage"], HasSubstr("nope"));
  // Once the assignment no longer carries them, they are no longer refused.
  MustApply(MakeAssignment(2, {"good"}));
  EXPECT_THAT(applier_->refused(), IsEmpty());
  EXPECT_THAT(StoredManaged(), UnorderedElementsAre("good"))
      << "a guest that could not be created is not managed";
}

// The agent dies after persisting the assignment and before acting on any of it, with one name
// marked managed whose guest was never created and one whose guest was deleted but not unmarked.
TEST_F(AgentLinkApplierTest, CrashBetweenPersistAndActConvergesOnRestart) {
  MustApply(MakeAssignment(1, {"old"}));
  ASSERT_TRUE(agent_.WaitRunning("old"));
  v1::Assignment next = MakeAssignment(2, {"a", "b"});
  ASSERT_TRUE(agent_.store().SaveAssignment({2, next.SerializeAsString()}));
  ASSERT_TRUE(agent_.store().AddManagedGuest("b"));
  ASSERT_TRUE(agent_.store().AddManagedGuest("gone"));

  applier_.reset();
  agent_.Restart();
  NewApplier();
  EXPECT_EQ(applier_->applied_version(), 2u);
  auto report = applier_->Reapply();
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_EQ(report->ran, 2);
  EXPECT_EQ(report->removed, 1);
  EXPECT_EQ(report->forgotten, 1);
  EXPECT_EQ(GuestNames(), (std::set<std::string>{"a", "b"}));
  EXPECT_THAT(StoredManaged(), UnorderedElementsAre("a", "b"));
  EXPECT_TRUE(agent_.WaitRunning("a"));
  EXPECT_TRUE(agent_.WaitRunning("b"));

  // Idempotent: converging again changes nothing.
  auto again = applier_->Reapply();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ran + again->removed + again->forgotten, 0);
  EXPECT_THAT(again->errors, IsEmpty());
}

TEST_F(AgentLinkApplierTest, RestartedAgentKeepsItsGuestsRunningWithoutTheSupervisor) {
  MustApply(MakeAssignment(1, {"a", "b"}));
  ASSERT_TRUE(agent_.WaitRunning("a"));
  ASSERT_TRUE(agent_.WaitRunning("b"));
  const std::string a_id = agent_.manager().Get("a")->id;
  const size_t starts = agent_.runtime().starts().size();

  applier_.reset();
  agent_.Restart();
  NewApplier();
  auto report = applier_->Reapply();
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_EQ(report->ran, 0);
  EXPECT_EQ(report->removed, 0);
  EXPECT_TRUE(agent_.WaitRunning("a"));
  EXPECT_EQ(agent_.manager().Get("a")->id, a_id);
  EXPECT_EQ(agent_.runtime().starts().size(), 0u)
      << "re-adopted, not restarted (was " << starts << " starts before the restart)";
  EXPECT_EQ(applier_->applied_version(), 1u);
}

TEST_F(AgentLinkApplierTest, ManagedGuestDeletedByHandIsRecreatedOnReapply) {
  MustApply(MakeAssignment(1, {"a"}));
  ASSERT_TRUE(agent_.manager().Delete("a"));
  auto report = applier_->Reapply();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->ran, 1);
  EXPECT_TRUE(agent_.Exists("a"));
}

TEST(AgentLinkDecodeTest, ClearsHostPortsAndReportsBadGuests) {
  v1::Assignment a = MakeAssignment(7, {"a", "a"});
  a.add_guests()->mutable_spec()->set_name("");
  DecodedAssignment d = DecodeAssignment(a);
  EXPECT_EQ(d.version, 7u);
  ASSERT_EQ(d.guests.size(), 1u);
  EXPECT_EQ(d.guests[0].service, "web");
  EXPECT_EQ(d.guests[0].spec.ports.at(0).host_port, 0);
  ASSERT_EQ(d.refused.size(), 2u);  // the duplicate and the nameless one
  EXPECT_EQ(d.refused[0].guest, "") << "the first \"a\" runs: the duplicate is no refusal of it";
}

}  // namespace
}  // namespace phoenix::agent::link
