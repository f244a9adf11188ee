#include "agent/vmm/snapshot/crc32c.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace phoenix::vmm {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Bitwise reference, independent of the table code.
uint32_t Reference(std::span<const uint8_t> data) {
  uint32_t c = ~0u;
  for (uint8_t b : data) {
    c ^= b;
    for (int i = 0; i < 8; ++i) c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
  }
  return ~c;
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c(Bytes("")), 0u);
  EXPECT_EQ(Crc32c(Bytes("123456789")), 0xe3069283u);  // the standard check value
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(Crc32c(zeros), 0x8a9136aau);  // RFC 3720 B.4
  std::vector<uint8_t> ones(32, 0xff);
  EXPECT_EQ(Crc32c(ones), 0x62a8ab43u);
}

TEST(Crc32c, MatchesBitwiseReferenceAtEveryLengthAndSplit) {
  std::vector<uint8_t> data(100);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 37 + 11);
  for (size_t n = 0; n <= data.size(); ++n) {
    std::span<const uint8_t> s(data.data(), n);
    ASSERT_EQ(Crc32c(s), Reference(s)) << n;
    const size_t half = n / 3;
    ASSERT_EQ(Crc32c(s.subspan(half), Crc32c(s.first(half))), Reference(s)) << n;
  }
}

}  // namespace
}  // namespace phoenix::vmm
