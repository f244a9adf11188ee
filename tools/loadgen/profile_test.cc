#include "tools/loadgen/profile.h"

#include <gtest/gtest.h>

namespace phoenix::loadgen {
namespace {

TEST(ProfileTest, StepsRunOneAfterAnother) {
  auto p = Profile::Parse("step:10@2,100@3,0@1");
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_DOUBLE_EQ(p->seconds(), 6);
  EXPECT_DOUBLE_EQ(p->RateAt(0), 10);
  EXPECT_DOUBLE_EQ(p->RateAt(1.99), 10);
  EXPECT_DOUBLE_EQ(p->RateAt(2), 100);
  EXPECT_DOUBLE_EQ(p->RateAt(5.5), 0);
  EXPECT_DOUBLE_EQ(p->RateAt(6), 0);
  EXPECT_DOUBLE_EQ(p->RequestsBy(2), 20);
  EXPECT_DOUBLE_EQ(p->RequestsBy(3), 120);
  EXPECT_DOUBLE_EQ(p->RequestsBy(100), 320);
  EXPECT_EQ(p->Describe(), "step 10/s for 2s, step 100/s for 3s, step 0/s for 1s");
}

TEST(ProfileTest, RampIsLinearAndItsIntegralIsTheTrapezoid) {
  auto p = Profile::Parse("ramp:0-100@10");
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_DOUBLE_EQ(p->RateAt(5), 50);
  EXPECT_DOUBLE_EQ(p->RequestsBy(5), 125);
  EXPECT_DOUBLE_EQ(p->RequestsBy(10), 500);
  auto down = Profile::Parse("ramp:100-0@10");
  ASSERT_TRUE(down.has_value());
  EXPECT_DOUBLE_EQ(down->RequestsBy(10), 500);
  EXPECT_DOUBLE_EQ(down->RateAt(2.5), 75);
}

TEST(ProfileTest, SpikeSitsInTheMiddleOfItsPhase) {
  auto p = Profile::Parse("spike:10-500@10:2");
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_DOUBLE_EQ(p->RateAt(3.9), 10);
  EXPECT_DOUBLE_EQ(p->RateAt(4), 500);
  EXPECT_DOUBLE_EQ(p->RateAt(5.9), 500);
  EXPECT_DOUBLE_EQ(p->RateAt(6), 10);
  EXPECT_DOUBLE_EQ(p->RequestsBy(4), 40);
  EXPECT_DOUBLE_EQ(p->RequestsBy(5), 540);
  EXPECT_DOUBLE_EQ(p->RequestsBy(10), 80 + 1000);
}

TEST(ProfileTest, MixedKindsAndDecimals) {
  auto p = Profile::Parse("step:2.5@4,ramp:0-10@2,spike:1-2@4:2");
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_DOUBLE_EQ(p->seconds(), 10);
  EXPECT_DOUBLE_EQ(p->RequestsBy(4), 10);
  EXPECT_DOUBLE_EQ(p->RequestsBy(6), 20);
  EXPECT_DOUBLE_EQ(p->RequestsBy(10), 20 + 2 + 4);
}

TEST(ProfileTest, RejectsBadPhasesNamingThem) {
  for (const char* bad :
       {"", "50@10", "step:50", "step:-5@10", "step:x@10", "step:5@0", "ramp:5@10", "walk:5@10",
        "spike:1-2@10", "spike:1-2@3:5", "step:5@10,", "step:5@10,,6@2", "step:5@1e400"}) {
    auto p = Profile::Parse(bad);
    ASSERT_FALSE(p.has_value()) << bad;
    EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(p.error().field, "--profile") << bad;
  }
  auto p = Profile::Parse("step:5@10,walk:1@2");
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("walk:1@2"), std::string::npos) << p.error().message;
}

}  // namespace
}  // namespace phoenix::loadgen
