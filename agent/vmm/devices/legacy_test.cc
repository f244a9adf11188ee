#include <gtest/gtest.h>

#include <ctime>

#include "agent/vmm/devices/cmos.h"
#include "agent/vmm/devices/i8042.h"

namespace phoenix::vmm {
namespace {

uint8_t In(BusDevice& d, uint64_t offset) {
  uint8_t b = 0xee;
  d.Read(offset, {&b, 1});
  return b;
}
void Out(BusDevice& d, uint64_t offset, uint8_t value) { d.Write(offset, {&value, 1}); }

TEST(I8042, ResetCommandCallsBack) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  EXPECT_NE(In(kbd, 4), 0xff);  // a controller is present
  EXPECT_EQ(In(kbd, 4) & 0x01, 0);
  Out(kbd, 4, 0xfe);
  EXPECT_EQ(resets, 1);
  // Output port write with the reset bit low resets too.
  Out(kbd, 4, 0xd1);
  Out(kbd, 0, 0xfe);
  EXPECT_EQ(resets, 2);
  Out(kbd, 4, 0xd1);
  Out(kbd, 0, 0xff);
  EXPECT_EQ(resets, 2);
}

TEST(I8042, CommandByteAndSelfTestAsLinuxProbesThem) {
  I8042 kbd(nullptr);
  Out(kbd, 4, 0xaa);
  EXPECT_EQ(In(kbd, 4) & 0x01, 0x01);
  EXPECT_EQ(In(kbd, 0), 0x55);
  EXPECT_EQ(In(kbd, 4) & 0x01, 0x00);
  Out(kbd, 4, 0x60);
  Out(kbd, 0, 0x47);
  Out(kbd, 4, 0x20);
  EXPECT_EQ(In(kbd, 0), 0x47);
  Out(kbd, 4, 0xad);
  Out(kbd, 4, 0x20);
  EXPECT_EQ(In(kbd, 0), 0x57);
  Out(kbd, 4, 0xfe);  // no callback: must not crash
}

TEST(I8042, SnapshotRoundTrip) {
  I8042 kbd(nullptr);
  Out(kbd, 4, 0x60);
  Out(kbd, 0, 0x11);
  Out(kbd, 4, 0x20);  // leaves 0x11 unread
  I8042 restored(nullptr);
  ASSERT_TRUE(restored.LoadState(kbd.SaveState()));
  EXPECT_EQ(In(restored, 4) & 0x09, 0x09);
  EXPECT_EQ(In(restored, 0), 0x11);
  auto state = kbd.SaveState();
  state.pop_back();
  EXPECT_FALSE(restored.LoadState(state));
}

constexpr std::time_t kFixed = 1700000000;  // 2023-11-14 22:13:20 UTC, a Tuesday

uint8_t Reg(Cmos& cmos, uint8_t index) {
  Out(cmos, 0, index);
  return In(cmos, 1);
}

TEST(Cmos, BcdTwentyFourHourTimeFromTheClock) {
  Cmos cmos(128ull << 20, [] { return kFixed; });
  EXPECT_EQ(Reg(cmos, 0x00), 0x20);
  EXPECT_EQ(Reg(cmos, 0x02), 0x13);
  EXPECT_EQ(Reg(cmos, 0x04), 0x22);
  EXPECT_EQ(Reg(cmos, 0x06), 0x03);
  EXPECT_EQ(Reg(cmos, 0x07), 0x14);
  EXPECT_EQ(Reg(cmos, 0x08), 0x11);
  EXPECT_EQ(Reg(cmos, 0x09), 0x23);
  EXPECT_EQ(Reg(cmos, 0x32), 0x20);
  EXPECT_EQ(Reg(cmos, 0x0a) & 0x80, 0);  // never update-in-progress
  EXPECT_EQ(Reg(cmos, 0x0b), 0x02);
  EXPECT_EQ(Reg(cmos, 0x0d), 0x80);
  EXPECT_EQ(Reg(cmos, 0x0c), 0x00);
}

TEST(Cmos, BinaryAndTwelveHourModesFollowRegisterB) {
  Cmos cmos(128ull << 20, [] { return kFixed; });
  Out(cmos, 0, 0x0b);
  Out(cmos, 1, 0x06);  // binary, 24h
  EXPECT_EQ(Reg(cmos, 0x04), 22);
  EXPECT_EQ(Reg(cmos, 0x09), 23);
  Out(cmos, 0, 0x0b);
  Out(cmos, 1, 0x04);  // binary, 12h: 22h = 10 PM
  EXPECT_EQ(Reg(cmos, 0x04), 0x80 | 10);
  // Time writes are ignored: the host clock stays authoritative.
  Out(cmos, 0, 0x00);
  Out(cmos, 1, 0x59);
  EXPECT_EQ(Reg(cmos, 0x00), 20);
}

TEST(Cmos, HostClockIsUsedByDefault) {
  Cmos cmos(128ull << 20);
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  uint8_t year = Reg(cmos, 0x09);
  EXPECT_EQ(((year >> 4) * 10 + (year & 0xf)), tm.tm_year % 100);
}

TEST(Cmos, MemorySizeBytes) {
  Cmos cmos(128ull << 20, [] { return kFixed; });
  EXPECT_EQ(Reg(cmos, 0x15) | (Reg(cmos, 0x16) << 8), 640);
  EXPECT_EQ(Reg(cmos, 0x17) | (Reg(cmos, 0x18) << 8), 0xffff);  // capped, as a BIOS does
  Cmos small(32ull << 20, [] { return kFixed; });
  EXPECT_EQ(Reg(small, 0x17) | (Reg(small, 0x18) << 8), 31 * 1024);
  EXPECT_EQ(Reg(small, 0x30) | (Reg(small, 0x31) << 8), 31 * 1024);
  EXPECT_EQ(Reg(cmos, 0x34) | (Reg(cmos, 0x35) << 8), (112 << 20) >> 16);
  Cmos big(3ull << 30, [] { return kFixed; });
  EXPECT_EQ(Reg(big, 0x17) | (Reg(big, 0x18) << 8), 0xffff);
  EXPECT_EQ(Reg(big, 0x34) | (Reg(big, 0x35) << 8), ((3ull << 30) - (16 << 20)) >> 16);
}

TEST(Cmos, NvramAndIndexSurviveSnapshot) {
  Cmos cmos(64ull << 20, [] { return kFixed; });
  Out(cmos, 0, 0x40);
  Out(cmos, 1, 0xab);
  Out(cmos, 0, 0x8b);  // NMI-mask bit ignored: index 0x0b
  Cmos restored(64ull << 20, [] { return kFixed; });
  ASSERT_TRUE(restored.LoadState(cmos.SaveState()));
  EXPECT_EQ(In(restored, 1), 0x02);
  EXPECT_EQ(Reg(restored, 0x40), 0xab);
  auto bad = cmos.SaveState();
  bad[4] = 0x80;  // index out of range
  EXPECT_FALSE(restored.LoadState(bad));
}

}  // namespace
}  // namespace phoenix::vmm
