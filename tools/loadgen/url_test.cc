#include "tools/loadgen/url.h"

#include <gtest/gtest.h>

namespace phoenix::loadgen {
namespace {

TEST(ParseTargetTest, LoopbackUrls) {
  auto t = ParseTarget("http://127.0.0.1:8080/health");
  ASSERT_TRUE(t.has_value()) << t.error().ToString();
  EXPECT_EQ(*t, (Target{"127.0.0.1", 8080, "/health"}));
  EXPECT_EQ(t->ToString(), "http://127.0.0.1:8080/health");
  EXPECT_EQ(*ParseTarget("http://localhost:9"), (Target{"127.0.0.1", 9, "/"}));
  EXPECT_EQ(*ParseTarget("http://127.1.2.3"), (Target{"127.1.2.3", 80, "/"}));
  auto v6 = ParseTarget("http://[::1]:81/x");
  ASSERT_TRUE(v6.has_value()) << v6.error().ToString();
  EXPECT_EQ(*v6, (Target{"::1", 81, "/x"}));
  EXPECT_EQ(v6->ToString(), "http://[::1]:81/x");
}

TEST(ParseTargetTest, RefusesEverythingButLoopback) {
  for (const char* bad : {"http://10.0.0.1:80/", "http://8.8.8.8/", "http://example.com/",
                          "http://[2001:db8::1]:80/", "http://0.0.0.0:80/"}) {
    auto t = ParseTarget(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(t.error().message.find("loopback"), std::string::npos) << t.error().message;
  }
}

TEST(ParseTargetTest, RejectsMalformed) {
  for (const char* bad :
       {"https://127.0.0.1/", "127.0.0.1:80", "http://:80/", "http://127.0.0.1:0/",
        "http://127.0.0.1:70000/", "http://127.0.0.1:/", "http://[::1/"}) {
    auto t = ParseTarget(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_EQ(t.error().field, "--target") << bad;
  }
}

}  // namespace
}  // namespace phoenix::loadgen
