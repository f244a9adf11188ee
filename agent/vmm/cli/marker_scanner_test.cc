#include "agent/vmm/cli/marker_scanner.h"

#include <gtest/gtest.h>

#include <string_view>

namespace phoenix::vmm {
namespace {

std::span<const uint8_t> B(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(MarkerScanner, FindsTheMarkerInOneWrite) {
  MarkerScanner s("phoenix-demo ready");
  EXPECT_FALSE(s.Feed(B("[    1.0] booting\n")));
  EXPECT_TRUE(s.Feed(B("init: phoenix-demo ready on :8080\n")));
  EXPECT_TRUE(s.found());
  EXPECT_FALSE(s.Feed(B("phoenix-demo ready")));  // reported once
}

TEST(MarkerScanner, FindsTheMarkerSplitAtEveryPossiblePoint) {
  const std::string text = "noise phoenix-demo ready\r\n";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    MarkerScanner s("phoenix-demo ready");
    const bool a = s.Feed(B(std::string_view(text).substr(0, cut)));
    const bool b = s.Feed(B(std::string_view(text).substr(cut)));
    EXPECT_TRUE(a != b) << cut;
    EXPECT_TRUE(s.found()) << cut;
  }
}

TEST(MarkerScanner, FindsTheMarkerOneByteAtATime) {
  const std::string text = "xxphoenix-demo readphoenix-demo ready";
  MarkerScanner s("phoenix-demo ready");
  int hits = 0;
  size_t at = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (s.Feed(B(std::string_view(text).substr(i, 1)))) {
      ++hits;
      at = i;
    }
  }
  EXPECT_EQ(hits, 1);
  EXPECT_EQ(at, text.size() - 1);  // only at the true end, not on the near miss
}

TEST(MarkerScanner, NearMissesAndBinaryBytesDoNotMatch) {
  MarkerScanner s("READY");
  EXPECT_FALSE(s.Feed(B("REA")));
  EXPECT_FALSE(s.Feed(B("D")));
  EXPECT_FALSE(s.Feed(B(std::string_view("\0Y", 2))));
  EXPECT_FALSE(s.Feed(B("ready")));
  EXPECT_FALSE(s.found());
  EXPECT_TRUE(s.Feed(B("READY")));
}

TEST(MarkerScanner, EmptyMarkerNeverMatches) {
  MarkerScanner s("");
  EXPECT_FALSE(s.Feed(B("anything")));
  EXPECT_FALSE(s.found());
}

}  // namespace
}  // namespace phoenix::vmm
