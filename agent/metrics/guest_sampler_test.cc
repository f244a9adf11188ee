#include "agent/metrics/guest_sampler.h"

#include <map>

#include <gtest/gtest.h>

namespace phoenix::agent::metrics {
namespace {

using namespace std::chrono_literals;

// Returns whatever the test set for a pid; an unset pid is a gone process.
class FakeUsageReader : public UsageReader {
 public:
  Result<Usage> Read(const UsageSource& source) override {
    ++reads;
    last_kind = source.kind;
    auto it = usage.find(source.pid);
    if (it == usage.end()) return NotFound("process " + std::to_string(source.pid) + " is gone");
    return it->second;
  }
  std::map<int, Usage> usage;
  int reads = 0;
  UsageSource::Kind last_kind = UsageSource::Kind::kProcess;
};

class GuestSamplerTest : public ::testing::Test {
 protected:
  GuestMetrics Step(std::chrono::milliseconds advance, const SampleInput& in) {
    now_ += advance;
    return sampler_.Sample(in, now_, wall_ + (now_ - start_));
  }
  SampleInput Input(std::string instance = "phx-web-1", int pid = 10, uint32_t vcpus = 1) {
    SampleInput in;
    in.instance = std::move(instance);
    in.source = {UsageSource::Kind::kCgroup, pid};
    in.vcpus = vcpus;
    return in;
  }

  FakeUsageReader reader_;
  GuestSampler sampler_{reader_};
  const GuestSampler::SteadyTime start_{std::chrono::seconds(1000)};
  GuestSampler::SteadyTime now_ = start_;
  const TimePoint wall_ = TimePoint(std::chrono::seconds(1'700'000'000));
};

TEST_F(GuestSamplerTest, FirstSampleHasNoRateButHasMemory) {
  reader_.usage[10] = {5'000'000'000, 64 << 20};
  GuestMetrics m = Step(0ms, Input());
  EXPECT_FALSE(m.cpu_valid);
  EXPECT_EQ(m.cpu_percent, 0);
  EXPECT_EQ(m.window_ms, 0u);
  EXPECT_EQ(m.memory_bytes, 64u << 20);
  EXPECT_EQ(reader_.last_kind, UsageSource::Kind::kCgroup);
}

TEST_F(GuestSamplerTest, CpuPercentIsOfTheAllowance) {
  reader_.usage[10] = {1'000'000'000, std::nullopt};
  SampleInput in = Input("phx-web-1", 10, /*vcpus=*/2);
  Step(0ms, in);
  reader_.usage[10].cpu_ns += 1'000'000'000;  // one core-second in one second, of two cores
  GuestMetrics m = Step(1000ms, in);
  ASSERT_TRUE(m.cpu_valid);
  EXPECT_DOUBLE_EQ(m.cpu_percent, 50.0);
  EXPECT_EQ(m.window_ms, 1000u);
  EXPECT_EQ(m.memory_bytes, 0u);  // unknown
  EXPECT_EQ(m.sampled_at, wall_ + 1s);

  reader_.usage[10].cpu_ns += 1'000'000'000;  // the same CPU time over two seconds
  m = Step(2000ms, in);
  ASSERT_TRUE(m.cpu_valid);
  EXPECT_DOUBLE_EQ(m.cpu_percent, 25.0);
  EXPECT_EQ(m.window_ms, 2000u);
}

TEST_F(GuestSamplerTest, IdleGuestIsValidZeroNotMissing) {
  reader_.usage[10] = {7, std::nullopt};
  Step(0ms, Input());
  GuestMetrics m = Step(1000ms, Input());
  ASSERT_TRUE(m.cpu_valid);
  EXPECT_EQ(m.cpu_percent, 0.0);
}

TEST_F(GuestSamplerTest, CounterGoingBackIsAResetNotANegativeRate) {
  reader_.usage[10] = {9'000'000'000, std::nullopt};
  Step(0ms, Input());
  reader_.usage[10].cpu_ns = 100'000'000;  // the cgroup was recreated under the same pid
  GuestMetrics m = Step(1000ms, Input());
  EXPECT_FALSE(m.cpu_valid);
  reader_.usage[10].cpu_ns += 500'000'000;
  m = Step(1000ms, Input());
  ASSERT_TRUE(m.cpu_valid);
  EXPECT_DOUBLE_EQ(m.cpu_percent, 50.0);
}

TEST_F(GuestSamplerTest, NewInstanceStartsAfresh) {
  reader_.usage[10] = {1'000'000'000, std::nullopt};
  reader_.usage[20] = {1'300'000'000, std::nullopt};  // more than the old one: still no window
  Step(0ms, Input("phx-web-1", 10));
  EXPECT_TRUE(Step(1000ms, Input("phx-web-1", 10)).cpu_valid);
  GuestMetrics m = Step(1000ms, Input("phx-web-2", 20));
  EXPECT_FALSE(m.cpu_valid);
  EXPECT_EQ(m.window_ms, 0u);
  reader_.usage[20].cpu_ns += 100'000'000;
  m = Step(1000ms, Input("phx-web-2", 20));
  ASSERT_TRUE(m.cpu_valid);
  EXPECT_DOUBLE_EQ(m.cpu_percent, 10.0);
}

TEST_F(GuestSamplerTest, SamePidNewInstanceNameAlsoStartsAfresh) {
  reader_.usage[10] = {1'000'000'000, std::nullopt};
  Step(0ms, Input("phx-web-1", 10));
  EXPECT_FALSE(Step(1000ms, Input("phx-web-2", 10)).cpu_valid);
}

TEST_F(GuestSamplerTest, FailedReadIsInvalidAndTheNextReadHasNoWindow) {
  reader_.usage[10] = {1'000'000'000, 4096};
  Step(0ms, Input());
  reader_.usage.erase(10);
  GuestMetrics m = Step(1000ms, Input());
  EXPECT_FALSE(m.cpu_valid);
  EXPECT_EQ(m.memory_bytes, 0u);
  reader_.usage[10] = {3'000'000'000, 4096};
  // The gap's CPU time is not attributed to a one-second window.
  EXPECT_FALSE(Step(1000ms, Input()).cpu_valid);
  reader_.usage[10].cpu_ns += 200'000'000;
  m = Step(1000ms, Input());
  ASSERT_TRUE(m.cpu_valid);
  EXPECT_DOUBLE_EQ(m.cpu_percent, 20.0);
}

TEST_F(GuestSamplerTest, ClockThatDidNotAdvanceGivesNoRate) {
  reader_.usage[10] = {1'000'000'000, std::nullopt};
  Step(0ms, Input());
  reader_.usage[10].cpu_ns += 1;
  EXPECT_FALSE(Step(0ms, Input()).cpu_valid);
}

TEST_F(GuestSamplerTest, NoPublishedPortMeansRequestsInvalid) {
  reader_.usage[10] = {0, std::nullopt};
  Step(0ms, Input());
  GuestMetrics m = Step(1000ms, Input());
  EXPECT_FALSE(m.requests_valid);
  EXPECT_EQ(m.requests_total, 0u);
}

TEST_F(GuestSamplerTest, RequestRateLatencyAndTotalsSinceTheInstanceStarted) {
  reader_.usage[10] = {0, std::nullopt};
  RequestCounters c;
  c.requests = 500;  // before this instance (the proxy outlives instances)
  c.connection_errors = 3;
  for (int i = 0; i < 500; ++i) c.latency.Record(1ms);
  SampleInput in = Input();
  in.requests = c;
  GuestMetrics m = Step(0ms, in);
  EXPECT_FALSE(m.requests_valid);  // no window yet
  EXPECT_EQ(m.requests_total, 0u);

  c.requests += 200;  // 200 requests in 2 s, all at 50 ms but the slowest 2 % at 400 ms
  for (int i = 0; i < 196; ++i) c.latency.Record(50ms);
  for (int i = 0; i < 4; ++i) c.latency.Record(400ms);
  c.connection_errors += 1;
  in.requests = c;
  m = Step(2000ms, in);
  ASSERT_TRUE(m.requests_valid);
  EXPECT_DOUBLE_EQ(m.requests_per_second, 100.0);
  EXPECT_NEAR(m.latency_p50_ms, 50.0, 10.0);
  EXPECT_NEAR(m.latency_p99_ms, 400.0, 80.0);
  EXPECT_EQ(m.requests_total, 200u);
  EXPECT_EQ(m.connection_errors_total, 1u);

  m = Step(1000ms, in);  // no requests in this window: a valid zero rate, no latency
  ASSERT_TRUE(m.requests_valid);
  EXPECT_EQ(m.requests_per_second, 0.0);
  EXPECT_EQ(m.latency_p50_ms, 0.0);
  EXPECT_EQ(m.latency_p99_ms, 0.0);
  EXPECT_EQ(m.requests_total, 200u);
}

TEST_F(GuestSamplerTest, ProxyCountersGoingBackAreRebasedNotNegative) {
  reader_.usage[10] = {0, std::nullopt};
  RequestCounters c;
  c.requests = 100;
  SampleInput in = Input();
  in.requests = c;
  Step(0ms, in);
  c.requests = 150;
  in.requests = c;
  EXPECT_EQ(Step(1000ms, in).requests_total, 50u);
  in.requests = RequestCounters{};  // proxies recreated: counters restart at 0
  in.requests->requests = 7;
  GuestMetrics m = Step(1000ms, in);
  EXPECT_FALSE(m.requests_valid);
  EXPECT_EQ(m.requests_total, 0u);
  in.requests->requests = 17;
  m = Step(1000ms, in);
  ASSERT_TRUE(m.requests_valid);
  EXPECT_DOUBLE_EQ(m.requests_per_second, 10.0);
  EXPECT_EQ(m.requests_total, 10u);
}

TEST_F(GuestSamplerTest, ResetForgetsTheWindow) {
  reader_.usage[10] = {0, std::nullopt};
  Step(0ms, Input());
  sampler_.Reset();
  EXPECT_FALSE(Step(1000ms, Input()).cpu_valid);
}

}  // namespace
}  // namespace phoenix::agent::metrics
