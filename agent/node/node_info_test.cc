#include "agent/node/node_info.h"

#include <gtest/gtest.h>

namespace phoenix::agent {
namespace {

TEST(NodeInfoTest, ParsesMemTotal) {
  auto mib = ParseMemTotalMib("MemTotal:       24576000 kB\nMemFree:  1 kB\n");
  ASSERT_TRUE(mib);
  EXPECT_EQ(*mib, 24000u);
  EXPECT_FALSE(ParseMemTotalMib("MemFree: 1 kB\n"));
  EXPECT_FALSE(ParseMemTotalMib("MemTotal: lots\n"));
}

TEST(NodeInfoTest, ReadsThisHost) {
  auto c = ReadHostCapacity();
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_GE(c->vcpus, 1u);
  EXPECT_GT(c->memory_mib, 64u);
  EXPECT_FALSE(HostName().empty());
}

TEST(NodeInfoTest, ParsesLabels) {
  auto l = ParseLabels("rack=r1,ssd=true");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->at("rack"), "r1");
  EXPECT_EQ(l->at("ssd"), "true");
  EXPECT_TRUE(ParseLabels("")->empty());
  auto bad = ParseLabels("rack");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "labels");
}

}  // namespace
}  // namespace phoenix::agent
