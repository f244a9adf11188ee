#include "agent/net/latency_histogram.h"

#include <gtest/gtest.h>

namespace phoenix::agent::net {
namespace {

using namespace std::chrono_literals;

TEST(LatencyHistogramTest, EmptyHasNoQuantile) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_FALSE(h.QuantileMs(0.5).has_value());
}

TEST(LatencyHistogramTest, BucketsAreContiguousAndContainTheirValues) {
  for (int i = 1; i < LatencyHistogram::kBuckets; ++i) {
    EXPECT_DOUBLE_EQ(LatencyHistogram::BucketLowerUs(i), LatencyHistogram::BucketUpperUs(i - 1));
  }
  for (std::chrono::nanoseconds d : std::initializer_list<std::chrono::nanoseconds>{
           0ns, 49us, 50us, 51us, 1ms, 7ms, 123ms, 2s, 100s}) {
    const int b = LatencyHistogram::BucketFor(d);
    const double us = static_cast<double>(d.count()) / 1000.0;
    EXPECT_GE(us, LatencyHistogram::BucketLowerUs(b)) << d.count();
    EXPECT_LT(us, LatencyHistogram::BucketUpperUs(b)) << d.count();
  }
  EXPECT_EQ(LatencyHistogram::BucketFor(std::chrono::hours(24)), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogramTest, QuantilesAreWithinABucketOfTheTruth) {
  LatencyHistogram h;
  // 1..100 ms: p50 = 50 ms, p90 = 90 ms, p99 = 99 ms.
  for (int ms = 1; ms <= 100; ++ms) h.Record(std::chrono::milliseconds(ms));
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.max(), 100ms);
  for (auto [q, truth] : {std::pair{0.5, 50.0}, {0.9, 90.0}, {0.99, 99.0}, {1.0, 100.0}}) {
    auto v = h.QuantileMs(q);
    ASSERT_TRUE(v.has_value());
    EXPECT_NEAR(*v, truth, truth * 0.2) << "q=" << q;
  }
}

TEST(LatencyHistogramTest, SingleValueQuantileIsInItsBucket) {
  LatencyHistogram h;
  h.Record(10ms);
  auto v = h.QuantileMs(0.99);
  ASSERT_TRUE(v.has_value());
  EXPECT_NEAR(*v, 10.0, 2.0);
}

TEST(LatencyHistogramTest, SinceGivesOnlyTheNewRequests) {
  LatencyHistogram h;
  for (int i = 0; i < 1000; ++i) h.Record(1ms);
  const LatencyHistogram earlier = h;
  for (int i = 0; i < 10; ++i) h.Record(200ms);
  auto window = h.Since(earlier);
  ASSERT_TRUE(window.has_value());
  EXPECT_EQ(window->count(), 10u);
  EXPECT_NEAR(*window->QuantileMs(0.5), 200.0, 40.0);
  // Over all time the median is still ~1 ms.
  EXPECT_NEAR(*h.QuantileMs(0.5), 1.0, 0.2);
}

TEST(LatencyHistogramTest, SinceANewerSnapshotIsNullopt) {
  LatencyHistogram older;
  LatencyHistogram newer = older;
  newer.Record(1ms);
  EXPECT_FALSE(older.Since(newer).has_value());
  EXPECT_TRUE(newer.Since(older).has_value());
}

TEST(LatencyHistogramTest, AddSumsBuckets) {
  LatencyHistogram a, b;
  a.Record(1ms);
  b.Record(100ms);
  b.Record(100ms);
  a.Add(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 100ms);
  EXPECT_NEAR(*a.QuantileMs(0.5), 100.0, 20.0);
}

TEST(LatencyHistogramTest, NegativeDurationsCountAsZero) {
  LatencyHistogram h;
  h.Record(-5ms);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_LT(*h.QuantileMs(1.0), 0.06);
}

}  // namespace
}  // namespace phoenix::agent::net
