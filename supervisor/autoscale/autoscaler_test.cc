#include "supervisor/autoscale/autoscaler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace phoenix::supervisor::autoscale {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

AutoscalePolicy Cpu60(uint32_t min = 1, uint32_t max = 10) {
  return AutoscalePolicy{
      .min_replicas = min, .max_replicas = max, .metric = AutoscaleMetric::kCpu, .target = 60};
}

ReplicaSample At(double value) { return {.running = true, .value = value, .age = 500ms}; }
ReplicaSample Quiet() { return {.running = true}; }
ReplicaSample Stale(double value) { return {.running = true, .value = value, .age = 10s}; }
ReplicaSample Starting() { return {.running = false}; }

// A fake clock: evaluations at explicit times, carrying the window like the controller does.
class Sim {
 public:
  explicit Sim(AutoscalePolicy policy, uint32_t current) : policy_(policy), current_(current) {}
  Output Step(std::chrono::seconds at, std::vector<ReplicaSample> replicas) {
    Output out = Evaluate(Input{.policy = policy_,
                                .current = current_,
                                .replicas = std::move(replicas),
                                .window = window_,
                                .now = kEpoch + at});
    window_ = out.window;
    if (out.decision) current_ = out.decision->to_replicas;
    return out;
  }
  // Everything at one value per replica.
  Output StepAll(std::chrono::seconds at, double value) {
    return Step(at, std::vector<ReplicaSample>(current_, At(value)));
  }
  uint32_t current() const { return current_; }
  const AutoscaleWindow& window() const { return window_; }
  void set_window(AutoscaleWindow w) { window_ = std::move(w); }
  static inline const TimePoint kEpoch = TimePoint(std::chrono::seconds(1'800'000'000));

 private:
  AutoscalePolicy policy_;
  uint32_t current_;
  AutoscaleWindow window_;
};

struct OneShot {
  const char* name;
  AutoscalePolicy policy;
  uint32_t current;
  std::vector<ReplicaSample> replicas;
  std::optional<uint32_t> want;  // nullopt = no decision
  const char* state_or_reason;
};

class OneShotTest : public ::testing::TestWithParam<OneShot> {};

TEST_P(OneShotTest, Decides) {
  const OneShot& c = GetParam();
  Sim sim(c.policy, c.current);
  Output out = sim.Step(0s, c.replicas);
  if (c.want) {
    ASSERT_TRUE(out.decision.has_value()) << out.state;
    EXPECT_EQ(out.decision->from_replicas, c.current);
    EXPECT_EQ(out.decision->to_replicas, *c.want);
    EXPECT_THAT(out.decision->reason, HasSubstr(c.state_or_reason));
  } else {
    EXPECT_FALSE(out.decision.has_value()) << out.decision->reason;
    EXPECT_THAT(out.state, HasSubstr(c.state_or_reason));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rules, OneShotTest,
    ::testing::Values(
        // desired = ceil(current * observed / target)
        OneShot{"ScalesOut",
                Cpu60(),
                2,
                {At(91), At(91)},
                4,
                "cpu 91.0% > target 60% (±10%) over 2 replicas: want 4"},
        OneShot{"CeilRoundsUp", Cpu60(), 3, {At(70), At(70), At(70)}, 4, "want 4"},
        // tolerance band: 65/60 = 1.083 is within ±10%
        OneShot{"WithinTolerance", Cpu60(), 2, {At(65), At(65)}, std::nullopt, "steady"},
        OneShot{"JustOutsideTolerance", Cpu60(1, 20), 10, std::vector<ReplicaSample>(10, At(66.6)),
                12, "want 12"},
        // clamping
        OneShot{"ClampedToMax", Cpu60(1, 3), 2, {At(100), At(100)}, 3, "want 3"},
        OneShot{"BelowMinRegardlessOfData", Cpu60(3, 6), 1, {Quiet()}, 3, "below the minimum"},
        OneShot{"AboveMaxRegardlessOfData",
                Cpu60(1, 2),
                5,
                {Quiet(), Quiet(), Quiet(), Quiet(), Quiet()},
                2,
                "above the maximum"},
        // missing data
        OneShot{"NoData", Cpu60(), 3, {Quiet(), Quiet(), Stale(5)}, std::nullopt, "no data"},
        OneShot{"QuietBlocksScaleIn",
                Cpu60(),
                3,
                {At(5), At(5), Quiet()},
                std::nullopt,
                "no scale-in on missing data"},
        OneShot{"StaleBlocksScaleIn",
                Cpu60(),
                3,
                {At(5), At(5), Stale(5)},
                std::nullopt,
                "no scale-in on missing data"},
        OneShot{"StartingBlocksScaleIn",
                Cpu60(),
                3,
                {At(5), At(5), Starting()},
                std::nullopt,
                "no scale-in on missing data"},
        // quiet at target: (120 + 60) / 60 = 3
        OneShot{"QuietCountsAtTargetForScaleOut",
                Cpu60(),
                2,
                {At(120), Quiet()},
                3,
                "(1 without data): want 3"},
        // starting at 0: (240 + 0) / 60 = 4, not 5
        OneShot{"StartingCountsZeroForScaleOut", Cpu60(), 2, {At(240), Starting()}, 4, "want 4"},
        // rate limit: from 2, at most max(4, 2) = 4 more in a period
        OneShot{"RateLimitedByStep",
                Cpu60(1, 20),
                2,
                {At(600), At(600)},
                6,
                "limited to 6 by the scale-up rate (4 per 10 s)"},
        // doubling is allowed when it is more than the step
        OneShot{"RateLimitAllowsDoubling", Cpu60(1, 40), 8, std::vector<ReplicaSample>(8, At(600)),
                16, "limited to 16 by the scale-up rate (8 per 10 s)"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AutoscalerTest, RpsReasonHasNumbers) {
  AutoscalePolicy p{
      .min_replicas = 1, .max_replicas = 6, .metric = AutoscaleMetric::kRps, .target = 200};
  Sim sim(p, 1);
  Output out = sim.Step(0s, {At(412.3)});
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->reason, "rps 412.3 > target 200 (±10%) over 1 replica: want 3");
  EXPECT_EQ(out.decision->to_replicas, 3u);
  EXPECT_DOUBLE_EQ(out.decision->observed, 412.3);
  EXPECT_EQ(out.decision->reporting_replicas, 1u);
  EXPECT_EQ(out.window.recent.size(), 1u);
}

TEST(AutoscalerTest, ScaleDownWaitsForTheWindowAndTakesItsHighestDesire) {
  AutoscalePolicy p = Cpu60();
  p.scale_down_stabilization_s = 60;
  Sim sim(p, 4);
  // t=0..10: load wants 4 (steady); t=11..: load wants 1.
  for (int t = 0; t <= 10; ++t) EXPECT_FALSE(sim.StepAll(std::chrono::seconds(t), 60).decision);
  for (int t = 11; t < 70; ++t) {
    Output out = sim.StepAll(std::chrono::seconds(t), 10);
    ASSERT_FALSE(out.decision) << "t=" << t << ": " << out.decision->reason;
    EXPECT_THAT(out.state, HasSubstr("waiting: scale-down window"));
    if (t == 30) {
      EXPECT_THAT(out.state, HasSubstr("(40 s left)"));
    }
  }
  // The last desire of 4 was at t=10: it leaves the window after t=70.
  Output out = sim.StepAll(71s, 10);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 1u);
}

TEST(AutoscalerTest, ScaleDownGoesToTheHighestRecentDesireNotTheLowest) {
  AutoscalePolicy p = Cpu60();
  p.scale_down_stabilization_s = 10;
  Sim sim(p, 6);
  sim.StepAll(0s, 60);                // wants 6
  sim.StepAll(5s, 30);                // wants 3
  sim.StepAll(8s, 10);                // wants 1
  Output out = sim.StepAll(11s, 10);  // 6 left the window; 3 (t=5) is the highest
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 3u);
  EXPECT_THAT(out.decision->reason, HasSubstr("highest desire of the last 10 s is 3"));
  out = sim.StepAll(16s, 10);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 1u);
}

TEST(AutoscalerTest, ScaleUpIsImmediateByDefault) {
  Sim sim(Cpu60(), 1);
  Output out = sim.StepAll(0s, 120);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 2u);
}

TEST(AutoscalerTest, ScaleUpStabilizationTakesTheLowestDesireOfItsWindow) {
  AutoscalePolicy p = Cpu60();
  p.scale_up_stabilization_s = 5;
  Sim sim(p, 2);
  EXPECT_FALSE(sim.StepAll(0s, 60).decision);  // wants 2
  Output out = sim.StepAll(2s, 120);           // wants 4; 2 is still in the window
  EXPECT_FALSE(out.decision);
  EXPECT_EQ(out.state, "waiting: scale-up window");
  out = sim.StepAll(4s, 120);
  EXPECT_FALSE(out.decision);
  out = sim.StepAll(6s, 120);  // the desire of 2 (t=0) left the 5 s window
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 4u);
}

TEST(AutoscalerTest, RateLimitCountsEarlierScaleUpsInThePeriod) {
  AutoscalePolicy p = Cpu60(1, 50);
  Sim sim(p, 1);
  // From 1: limit 1 + max(4, 1) = 5.
  Output out = sim.StepAll(0s, 6000);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 5u);
  // Still in the period: base 1, 4 already added: no more.
  out = sim.Step(3s, {At(6000), Starting(), Starting(), Starting(), Starting()});
  EXPECT_FALSE(out.decision);
  EXPECT_EQ(out.state, "waiting: scale-up rate limit");
  // The period (10 s) passed: from 5, at most 5 more.
  out = sim.StepAll(11s, 6000);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 10u);
}

TEST(AutoscalerTest, QuietSpellRestartsTheScaleDownWindow) {
  AutoscalePolicy p = Cpu60();
  p.scale_down_stabilization_s = 10;
  Sim sim(p, 3);
  sim.StepAll(0s, 60);
  // Every replica goes quiet for 20 s: nothing changes and the window holds 3.
  for (int t = 1; t <= 20; ++t) {
    Output out = sim.Step(std::chrono::seconds(t), {Quiet(), Quiet(), Quiet()});
    EXPECT_FALSE(out.decision);
  }
  // Data returns, low: still 10 s of "3" in the window.
  Output out = sim.StepAll(21s, 5);
  EXPECT_FALSE(out.decision);
  out = sim.StepAll(31s, 5);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 1u);
}

TEST(AutoscalerTest, RestartWithThePersistedWindowNeitherDoubleScalesNorForgets) {
  AutoscalePolicy p = Cpu60(1, 50);
  p.scale_down_stabilization_s = 30;
  Sim before(p, 1);
  Output out = before.StepAll(0s, 6000);  // 1 -> 5 (rate limited)
  ASSERT_TRUE(out.decision);
  // "Restart": a new evaluator gets the count and window that were committed together.
  Sim after(p, before.current());
  after.set_window(before.window());
  // Within the period the high load cannot add more: the earlier scale-up is remembered.
  out = after.Step(2s, {At(6000), Starting(), Starting(), Starting(), Starting()});
  EXPECT_FALSE(out.decision);
  // Low load after the restart: the window still holds the earlier desires.
  out = after.StepAll(12s, 5);  // wants 1, but the window (30 s) saw 50
  EXPECT_FALSE(out.decision);
  EXPECT_THAT(out.state, HasSubstr("scale-down window"));
  out = after.StepAll(33s, 5);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->to_replicas, 1u);
}

TEST(AutoscalerTest, WindowIsPrunedAndRunLengthEncoded) {
  AutoscalePolicy p = Cpu60();
  p.scale_down_stabilization_s = 10;
  Sim sim(p, 2);
  for (int t = 0; t < 100; ++t) sim.StepAll(std::chrono::seconds(t), 60);
  ASSERT_EQ(sim.window().desires.size(), 1u);
  EXPECT_EQ(sim.window().desires[0].replicas, 2u);
  EXPECT_EQ(sim.window().desires[0].last, Sim::kEpoch + 99s);
  EXPECT_TRUE(sim.window().scale_ups.empty());
}

TEST(AutoscalerTest, RecentDecisionsAreNewestFirstAndCapped) {
  AutoscalePolicy p = Cpu60(1, 100);
  p.scale_down_stabilization_s = 0;
  Sim sim(p, 1);
  for (int t = 0; t < 30; ++t) {
    sim.StepAll(std::chrono::seconds(t * 20), t % 2 == 0 ? 120 : 10);
  }
  ASSERT_EQ(sim.window().recent.size(), kMaxRecentDecisions);
  EXPECT_GT(sim.window().recent[0].time, sim.window().recent[1].time);
}

struct BadPolicy {
  const char* name;
  AutoscalePolicy policy;
  const char* field;
};
class ValidateTest : public ::testing::TestWithParam<BadPolicy> {};
TEST_P(ValidateTest, NamesTheField) {
  auto r = ValidatePolicy(GetParam().policy, "spec.autoscale");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().field, GetParam().field);
}
INSTANTIATE_TEST_SUITE_P(
    Policies, ValidateTest,
    ::testing::Values(BadPolicy{"MinZero",
                                {.min_replicas = 0, .max_replicas = 2, .target = 60},
                                "spec.autoscale.min_replicas"},
                      BadPolicy{"MinAboveMax",
                                {.min_replicas = 3, .max_replicas = 2, .target = 60},
                                "spec.autoscale.max_replicas"},
                      BadPolicy{"TargetZero",
                                {.min_replicas = 1, .max_replicas = 2, .target = 0},
                                "spec.autoscale.target"},
                      BadPolicy{"TargetNegative",
                                {.min_replicas = 1, .max_replicas = 2, .target = -5},
                                "spec.autoscale.target"},
                      BadPolicy{"ToleranceOne",
                                {.min_replicas = 1, .max_replicas = 2, .target = 5, .tolerance = 1},
                                "spec.autoscale.tolerance"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AutoscalerTest, ValidPolicyPassesAndMessageNamesMin) {
  EXPECT_TRUE(ValidatePolicy(Cpu60(1, 6), "spec.autoscale"));
  auto r = ValidatePolicy(Cpu60(4, 2), "spec.autoscale");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "must be >= min_replicas (4)");
  EXPECT_EQ(ParseMetric("rps"), AutoscaleMetric::kRps);
  EXPECT_EQ(ParseMetric("memory"), std::nullopt);
}

}  // namespace
}  // namespace phoenix::supervisor::autoscale
