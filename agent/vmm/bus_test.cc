#include "agent/vmm/bus.h"

#include <gtest/gtest.h>

namespace phoenix::vmm {
namespace {

class RecordingDevice : public BusDevice {
 public:
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    for (auto& b : data) b = 0xab;
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
  }
  uint64_t last_offset = ~0ull;
  size_t last_size = 0;
};

TEST(Bus, RoutesByRangeWithOffsets) {
  Bus bus;
  auto a = std::make_shared<RecordingDevice>();
  auto b = std::make_shared<RecordingDevice>();
  ASSERT_TRUE(bus.Insert(0x3f8, 8, a));
  ASSERT_TRUE(bus.Insert(0x60, 1, b));
  uint8_t byte = 0;
  EXPECT_TRUE(bus.Read(0x3fd, {&byte, 1}));
  EXPECT_EQ(byte, 0xab);
  EXPECT_EQ(a->last_offset, 5u);
  uint8_t word[4] = {};
  EXPECT_TRUE(bus.Write(0x60, {word, 1}));
  EXPECT_EQ(b->last_offset, 0u);
  EXPECT_FALSE(bus.Write(0x60, {word, 4}));  // straddles the end of a 1-byte range
  EXPECT_FALSE(bus.Read(0x400, {&byte, 1}));
  EXPECT_FALSE(bus.Read(0x3f7, {&byte, 1}));
}

TEST(Bus, RefusesOverlapsAndEmptyRanges) {
  Bus bus;
  auto d = std::make_shared<RecordingDevice>();
  ASSERT_TRUE(bus.Insert(0x100, 0x10, d));
  EXPECT_FALSE(bus.Insert(0x10f, 1, d));
  EXPECT_FALSE(bus.Insert(0xf0, 0x11, d));
  EXPECT_FALSE(bus.Insert(0x200, 0, d));
  EXPECT_FALSE(bus.Insert(0x100, 0x10, nullptr));
  EXPECT_TRUE(bus.Insert(0x110, 1, d));
  EXPECT_TRUE(bus.Insert(0xff, 1, d));
}

}  // namespace
}  // namespace phoenix::vmm
