#include "agent/reconcile/decisions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::agent {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

struct BackoffCase {
  uint32_t failures;
  int64_t expect_ms;
};

class RestartBackoffTest : public ::testing::TestWithParam<BackoffCase> {};

TEST_P(RestartBackoffTest, DoublesFromSecondFailureUpToCap) {
  RestartSpec spec{RestartPolicy::kAlways, 500, 4000};
  EXPECT_EQ(RestartBackoff(spec, GetParam().failures), milliseconds(GetParam().expect_ms));
}

INSTANTIATE_TEST_SUITE_P(Table, RestartBackoffTest,
                         ::testing::Values(BackoffCase{0, 0}, BackoffCase{1, 0},
                                           BackoffCase{2, 500}, BackoffCase{3, 1000},
                                           BackoffCase{4, 2000}, BackoffCase{5, 4000},
                                           BackoffCase{6, 4000}, BackoffCase{1000, 4000}));

struct DecideCase {
  const char* title;
  RestartPolicy policy;
  ExitCause cause;
  uint32_t failures;
  bool restart;
  int64_t delay_ms;
  GuestState state_if_not;
};

class DecideRestartTest : public ::testing::TestWithParam<DecideCase> {};

TEST_P(DecideRestartTest, FollowsPolicy) {
  const DecideCase& c = GetParam();
  RestartDecision d = DecideRestart(RestartSpec{c.policy, 100, 1000}, c.cause, c.failures);
  EXPECT_EQ(d.restart, c.restart);
  EXPECT_EQ(d.delay, milliseconds(c.delay_ms));
  EXPECT_EQ(d.state_if_not, c.state_if_not);
}

INSTANTIATE_TEST_SUITE_P(
    Table, DecideRestartTest,
    ::testing::Values(DecideCase{"always_crash", RestartPolicy::kAlways, ExitCause::kCrashed, 1,
                                 true, 0, GuestState::kFailed},
                      DecideCase{"always_exit", RestartPolicy::kAlways, ExitCause::kExited, 1, true,
                                 0, GuestState::kStopped},
                      DecideCase{"always_loop", RestartPolicy::kAlways, ExitCause::kCrashed, 3,
                                 true, 200, GuestState::kFailed},
                      DecideCase{"always_start_failed", RestartPolicy::kAlways,
                                 ExitCause::kStartFailed, 2, true, 100, GuestState::kFailed},
                      DecideCase{"on_failure_crash", RestartPolicy::kOnFailure, ExitCause::kCrashed,
                                 1, true, 0, GuestState::kFailed},
                      DecideCase{"on_failure_unhealthy", RestartPolicy::kOnFailure,
                                 ExitCause::kUnhealthy, 2, true, 100, GuestState::kFailed},
                      DecideCase{"on_failure_exit", RestartPolicy::kOnFailure, ExitCause::kExited,
                                 1, false, 0, GuestState::kStopped},
                      DecideCase{"never_crash", RestartPolicy::kNever, ExitCause::kCrashed, 1,
                                 false, 0, GuestState::kFailed},
                      DecideCase{"never_exit", RestartPolicy::kNever, ExitCause::kExited, 1, false,
                                 0, GuestState::kStopped}),
    [](const auto& info) { return std::string(info.param.title); });

GuestRecord Record(std::string id, std::string instance, bool desired,
                   GuestState state = GuestState::kRunning) {
  GuestRecord r;
  r.id = std::move(id);
  r.instance = std::move(instance);
  r.desired_running = desired;
  r.state = state;
  return r;
}

InstanceStatus Instance(std::string name, std::string guest_id, bool running) {
  return InstanceStatus{std::move(name), std::move(guest_id), running, running ? 42 : 0};
}

TEST(PlanAdoptionTest, KeepsRunningRecordedInstance) {
  auto plan = PlanAdoption({Record("g1", "phx-web-3", true)}, {Instance("phx-web-3", "g1", true)});
  EXPECT_THAT(plan.adopt, ElementsAre("g1"));
  EXPECT_THAT(plan.restart, IsEmpty());
  EXPECT_THAT(plan.destroy, IsEmpty());
}

TEST(PlanAdoptionTest, RestartsWhenInstanceVanished) {
  auto plan = PlanAdoption({Record("g1", "phx-web-3", true)}, {});
  EXPECT_THAT(plan.adopt, IsEmpty());
  EXPECT_THAT(plan.restart, ElementsAre("g1"));
}

TEST(PlanAdoptionTest, RestartsAndCleansUpStoppedInstance) {
  auto plan = PlanAdoption({Record("g1", "phx-web-3", true)}, {Instance("phx-web-3", "g1", false)});
  EXPECT_THAT(plan.restart, ElementsAre("g1"));
  EXPECT_THAT(plan.destroy, ElementsAre("phx-web-3"));
}

TEST(PlanAdoptionTest, NeverKeepsTwoInstancesOfOneGuest) {
  // The agent died after starting phx-web-4 but the record names phx-web-3 (or the reverse): only
  // the recorded one survives, so a guest never runs twice.
  auto plan = PlanAdoption({Record("g1", "phx-web-4", true)},
                           {Instance("phx-web-3", "g1", true), Instance("phx-web-4", "g1", true)});
  EXPECT_THAT(plan.adopt, ElementsAre("g1"));
  EXPECT_THAT(plan.destroy, ElementsAre("phx-web-3"));
}

TEST(PlanAdoptionTest, DestroysStoppedGuestsInstancesButNotOtherAgents) {
  auto plan =
      PlanAdoption({Record("g1", "phx-a-1", false, GuestState::kStopping), Record("g2", "", true)},
                   {Instance("phx-a-1", "g1", true), Instance("phx-other-9", "someone-elses", true),
                    Instance("phx-golden-x", "", false)});
  EXPECT_THAT(plan.adopt, IsEmpty());
  EXPECT_THAT(plan.restart, ElementsAre("g2"));
  EXPECT_THAT(plan.destroy, ElementsAre("phx-a-1"));
}

TEST(PlanAdoptionTest, InstanceOfAnotherGuestIsNotAdopted) {
  auto plan = PlanAdoption({Record("g1", "phx-web-3", true), Record("g2", "", false)},
                           {Instance("phx-web-3", "g2", true)});
  EXPECT_THAT(plan.adopt, IsEmpty());
  EXPECT_THAT(plan.restart, ElementsAre("g1"));
  EXPECT_THAT(plan.destroy, ElementsAre("phx-web-3"));
}

TEST(PlanAdoptionTest, FailedGuestIsNotRestarted) {
  auto plan = PlanAdoption({Record("g1", "", true, GuestState::kFailed)}, {});
  EXPECT_THAT(plan.restart, IsEmpty());
}

}  // namespace
}  // namespace phoenix::agent
