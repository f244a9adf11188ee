#include "tools/loadgen/stats.h"

#include <gtest/gtest.h>

namespace phoenix::loadgen {
namespace {

TEST(LatencyRecorderTest, NearestRankPercentiles) {
  LatencyRecorder r;
  EXPECT_FALSE(r.Percentile(50).has_value());
  EXPECT_FALSE(r.Max().has_value());
  for (int i = 100; i >= 1; --i) r.Add(i);  // unsorted on purpose
  EXPECT_EQ(r.Percentile(50), 50);
  EXPECT_EQ(r.Percentile(90), 90);
  EXPECT_EQ(r.Percentile(99), 99);
  EXPECT_EQ(r.Percentile(100), 100);
  EXPECT_EQ(r.Max(), 100);
  r.Add(1000);  // added after a sort: sorted again
  EXPECT_EQ(r.Percentile(100), 1000);
  EXPECT_EQ(r.Percentile(50), 51);
}

TEST(LatencyRecorderTest, SmallSamples) {
  LatencyRecorder r;
  r.Add(7);
  EXPECT_EQ(r.Percentile(1), 7);
  EXPECT_EQ(r.Percentile(99), 7);
  r.Add(3);
  EXPECT_EQ(r.Percentile(50), 3);
  EXPECT_EQ(r.Percentile(51), 7);
  r.Clear();
  EXPECT_EQ(r.count(), 0u);
}

TEST(LatencyRecorderTest, ClearedAndRefilledToTheSameSizeIsSortedAgain) {
  LatencyRecorder r;
  r.Add(1);
  r.Add(2);
  EXPECT_EQ(r.Percentile(100), 2);
  r.Clear();
  r.Add(50);
  r.Add(10);
  EXPECT_EQ(r.Percentile(50), 10);
  EXPECT_EQ(r.Percentile(100), 50);
}

TEST(RunTotalsTest, CountsErrorsOfEveryKind) {
  RunTotals t;
  t.errors["timeout"] = 2;
  t.errors["http 503"] = 3;
  EXPECT_EQ(t.error_count(), 5u);
}

}  // namespace
}  // namespace phoenix::loadgen
