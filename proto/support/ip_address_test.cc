#include "proto/support/ip_address.h"

#include <gtest/gtest.h>

namespace phoenix {
namespace {

TEST(Ipv4SubnetTest, ParsesNetworksAndRefusesEverythingElse) {
  struct Case {
    std::string_view text;
    bool ok;
  };
  for (const Case& c : std::initializer_list<Case>{{"10.88.1.0/24", true},
                                                   {"10.0.0.0/8", true},
                                                   {"192.168.7.8/29", true},
                                                   {"10.88.1.1/24", false},  // host bits set
                                                   {"10.88.1.0", false},
                                                   {"10.88.1.0/30", false},  // no room
                                                   {"10.0.0.0/7", false},
                                                   {"10.88.1.0/", false},
                                                   {"10.88.1.0/2x", false},
                                                   {"host/24", false},
                                                   {"fd00::/64", false}}) {
    EXPECT_EQ(ParseIpv4Subnet(c.text).has_value(), c.ok) << c.text;
  }
  auto s = ParseIpv4Subnet("10.88.1.0/24");
  ASSERT_TRUE(s);
  EXPECT_EQ(FormatSubnet(*s), "10.88.1.0/24");
  EXPECT_EQ(FormatIpv4(s->gateway()), "10.88.1.1");
  EXPECT_EQ(FormatIpv4(s->broadcast()), "10.88.1.255");
}

TEST(Ipv4SubnetTest, ContainsAndOverlaps) {
  auto a = *ParseIpv4Subnet("10.88.0.0/16");
  auto b = *ParseIpv4Subnet("10.88.3.0/24");
  auto c = *ParseIpv4Subnet("10.89.0.0/24");
  EXPECT_TRUE(a.Overlaps(b));
  EXPECT_TRUE(b.Overlaps(a));
  EXPECT_FALSE(b.Overlaps(c));
  EXPECT_TRUE(b.Contains(b.gateway()));
  EXPECT_FALSE(c.Contains(b.gateway()));
}

}  // namespace
}  // namespace phoenix
