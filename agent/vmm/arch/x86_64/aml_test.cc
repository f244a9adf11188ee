#include "agent/vmm/arch/x86_64/aml.h"

#include <gtest/gtest.h>

#include "agent/vmm/arch/x86_64/acpi.h"

namespace phoenix::vmm::x86 {
namespace {

using aml::Bytes;

// Concatenation that reserves first (g++ 12 -O2 warns falsely about inserting into a vector built
// from a short initializer list).
Bytes Cat(std::initializer_list<const Bytes*> parts) {
  size_t size = 0;
  for (const Bytes* part : parts) size += part->size();
  Bytes out;
  out.reserve(size);
  for (const Bytes* part : parts) out.insert(out.end(), part->begin(), part->end());
  return out;
}

TEST(AmlTest, PkgLengthOneByteUpTo62PayloadBytes) {
  EXPECT_EQ(aml::PkgLength(0), (Bytes{0x01}));
  EXPECT_EQ(aml::PkgLength(10), (Bytes{0x0b}));
  EXPECT_EQ(aml::PkgLength(62), (Bytes{0x3f}));
}

TEST(AmlTest, PkgLengthTwoBytes) {
  // 63 payload bytes + 2 length bytes = 65 = 0x41: lead 0x40 | low nibble 1, then 0x41 >> 4 = 4.
  EXPECT_EQ(aml::PkgLength(63), (Bytes{0x41, 0x04}));
  // 298 + 2 = 300 = 0x12c: lead 0x4c, then 0x12.
  EXPECT_EQ(aml::PkgLength(298), (Bytes{0x4c, 0x12}));
  // Largest 2-byte length: 0xfff total.
  EXPECT_EQ(aml::PkgLength(0xfff - 2), (Bytes{0x4f, 0xff}));
}

TEST(AmlTest, PkgLengthThreeAndFourBytes) {
  // 0xffe + 2 = 0x1000 no longer fits 12 bits: 0xffe + 3 = 0x1001 -> 0x81, 0x00, 0x01.
  EXPECT_EQ(aml::PkgLength(0xffe), (Bytes{0x81, 0x00, 0x01}));
  // Largest 3-byte length: 0xfffff total.
  EXPECT_EQ(aml::PkgLength(0xfffff - 3), (Bytes{0x8f, 0xff, 0xff}));
  // 0xffffd + 4 = 0x100001 -> 0xc1, then 0x10000 little-endian.
  EXPECT_EQ(aml::PkgLength(0xffffd), (Bytes{0xc1, 0x00, 0x00, 0x01}));
}

TEST(AmlTest, Integers) {
  EXPECT_EQ(aml::Integer(0), (Bytes{0x00}));
  EXPECT_EQ(aml::Integer(1), (Bytes{0x01}));
  EXPECT_EQ(aml::Integer(5), (Bytes{0x0a, 0x05}));
  EXPECT_EQ(aml::Integer(0x1234), (Bytes{0x0b, 0x34, 0x12}));
  EXPECT_EQ(aml::Integer(0xd0000000), (Bytes{0x0c, 0x00, 0x00, 0x00, 0xd0}));
  EXPECT_EQ(aml::Integer(0x100000000), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AmlTest, NamesAndStrings) {
  EXPECT_EQ(aml::NameString("\\_SB"), (Bytes{'\\', '_', 'S', 'B', '_'}));
  EXPECT_EQ(aml::String("AB"), (Bytes{0x0d, 'A', 'B', 0}));
  EXPECT_EQ(aml::EisaId("PNP0A03"), (Bytes{0x0c, 0x41, 0xd0, 0x0a, 0x03}));  // 0x030ad041
}

// One virtio-mmio device, decoded by hand from the ACPI 6.5 AML grammar.
Bytes ExpectedVirtioDevice() {
  const Bytes hid = {0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0};
  const Bytes uid = {0x08, '_', 'U', 'I', 'D', 0x00};
  const Bytes crs = {
      0x08, '_',  'C',  'R',  'S',   // Name(_CRS,
      0x11, 0x1a, 0x0a, 0x17,        // Buffer: PkgLength 26 (1 + 2 + 23), size 23
      0x86, 0x09, 0x00, 0x01,        // Memory32Fixed, length 9, ReadWrite
      0x00, 0x00, 0x00, 0xd0,        //   base 0xd0000000
      0x00, 0x10, 0x00, 0x00,        //   length 0x1000
      0x89, 0x06, 0x00, 0x01,        // Extended Interrupt, length 6, consumer|level|high|exclusive
      0x01, 0x05, 0x00, 0x00, 0x00,  // one interrupt: GSI 5
      0x79, 0x00};                   // End Tag
  const Bytes name = {'V', 'R', '0', '0'};
  const Bytes contents = Cat({&name, &hid, &uid, &crs});
  EXPECT_EQ(contents.size(), 4u + 15 + 6 + 32);  // 57: a 1-byte PkgLength (58)
  const Bytes head = {0x5b, 0x82, 58};
  return Cat({&head, &contents});
}

Bytes ExpectedSerialDevice() {
  return {0x5b, 0x82, 0x2b, 'C',  'O',  'M',  '1',                     // Device(COM1), PkgLength 43
          0x08, '_',  'H',  'I',  'D',  0x0c, 0x41, 0xd0, 0x05, 0x01,  // EisaId("PNP0501")
          0x08, '_',  'U',  'I',  'D',  0x00,                          // _UID 0
          0x08, '_',  'C',  'R',  'S',  0x11, 0x10, 0x0a, 0x0d,        // Buffer of 13 bytes
          0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,              // IO(Decode16, 0x3f8, 8)
          0x22, 0x10, 0x00,                                            // IRQNoFlags(){4}
          0x79, 0x00};
}

Bytes ExpectedRtcDevice() {
  return {0x5b, 0x82, 0x22, 'R',  'T',  'C',  '_',                     // Device(RTC_), PkgLength 34
          0x08, '_',  'H',  'I',  'D',  0x0c, 0x41, 0xd0, 0x0b, 0x00,  // EisaId("PNP0B00")
          0x08, '_',  'C',  'R',  'S',  0x11, 0x0d, 0x0a, 0x0a,        // Buffer of 10 bytes
          0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02,              // IO(Decode16, 0x70, 2)
          0x79, 0x00};
}

// Device(VGEN) at id address 0xdf000, decoded by hand.
Bytes ExpectedVmGenIdDevice() {
  const Bytes hid = {0x08, '_', 'H', 'I', 'D', 0x0d, 'P', 'H', 'X', 'V', 'G', 'I', 'D', '0', 0};
  const Bytes cid = {0x08, '_', 'C', 'I', 'D', 0x0d, 'V', 'M', '_', 'G', 'E',
                     'N',  '_', 'C', 'O', 'U', 'N',  'T', 'E', 'R', 0};
  const Bytes ddn = {0x08, '_', 'D', 'D', 'N', 0x0d, 'V', 'M', '_', 'G', 'e',
                     'n',  '_', 'C', 'o', 'u', 'n',  't', 'e', 'r', 0};
  const Bytes addr = {0x08, 'A',  'D',  'D',  'R',   // Name(ADDR,
                      0x12, 0x08, 0x02,              // Package: PkgLength 8, 2 elements
                      0x0c, 0x00, 0xf0, 0x0d, 0x00,  //   DWord 0x000df000 (low)
                      0x00};                         //   Zero (high)
  const Bytes name = {'V', 'G', 'E', 'N'};
  const Bytes contents = Cat({&name, &hid, &cid, &ddn, &addr});
  EXPECT_EQ(contents.size(), 4u + 15 + 21 + 21 + 14);  // 75: a 2-byte PkgLength, 77 = 0x4d
  const Bytes head = {0x5b, 0x82, 0x4d, 0x04};
  return Cat({&head, &contents});
}

// Device(GED_) on GSI 23, decoded by hand.
Bytes ExpectedGenericEventDevice() {
  return {0x5b, 0x82, 0x36, 'G',  'E',  'D',  '_',  // PkgLength 54
          0x08, '_',  'H',  'I',  'D',  0x0d, 'A',  'C',  'P',  'I',  '0',  '0', '1',
          '3',  0,    0x08, '_',  'C',  'R',  'S',  0x11, 0x0e, 0x0a, 0x0b,  // Buffer of 11 bytes
          0x89, 0x06, 0x00, 0x03, 0x01, 0x17, 0x00, 0x00, 0x00,              // edge, high: GSI 23
          0x79, 0x00,                                                        // End Tag
          0x14, 0x0d, '_',  'E',  'V',  'T',  0x01,                          // Method(_EVT, 1)
          0x86, 'V',  'G',  'E',  'N',  0x0a, 0x80};                         //   Notify(VGEN, 0x80)
}

TEST(AmlTest, VmGenIdAndItsEventDeviceDecodeAsExpected) {
  EXPECT_EQ(VmGenIdDeviceAml(0xdf000), ExpectedVmGenIdDevice());
  EXPECT_EQ(GenericEventDeviceAml(23), ExpectedGenericEventDevice());
}

TEST(AmlTest, VirtioDeviceDecodesAsExpected) {
  EXPECT_EQ(VirtioMmioDeviceAml(0, {0xd0000000, 0x1000, 5}), ExpectedVirtioDevice());
}

TEST(AmlTest, SerialDeviceDecodesAsExpected) {
  EXPECT_EQ(SerialDeviceAml(), ExpectedSerialDevice());
}

TEST(AmlTest, RtcDeviceDecodesAsExpected) { EXPECT_EQ(RtcDeviceAml(), ExpectedRtcDevice()); }

TEST(AmlTest, DsdtBodyIsOneScopeWithSerialRtcVmGenIdThenVirtioDevices) {
  const Bytes body = DsdtBody({{0xd0000000, 0x1000, 5}});
  // Scope(\_SB_): 5 name bytes + 45 + 36 + 79 + 56 + 60 device bytes = 281 payload -> 2-byte
  // PkgLength 283 = 0x11b: lead 0x40 | 0xb, then 0x11.
  const Bytes scope = {0x10, 0x4b, 0x11, '\\', '_', 'S', 'B', '_'};
  const Bytes serial = ExpectedSerialDevice();
  const Bytes rtc = ExpectedRtcDevice();
  const Bytes vgen = ExpectedVmGenIdDevice();
  const Bytes ged = ExpectedGenericEventDevice();
  const Bytes virtio = ExpectedVirtioDevice();
  EXPECT_EQ(body, Cat({&scope, &serial, &rtc, &vgen, &ged, &virtio}));
}

TEST(AmlTest, SecondDeviceGetsItsOwnNameUidAndGsi) {
  const Bytes body = DsdtBody({{0xd0000000, 0x1000, 5}, {0xd0001000, 0x1000, 6}});
  const Bytes second = {'V', 'R', '0', '1', 0x08, '_', 'H', 'I', 'D'};
  auto it = std::search(body.begin(), body.end(), second.begin(), second.end());
  ASSERT_NE(it, body.end());
  const Bytes uid1 = {0x08, '_', 'U', 'I', 'D', 0x01};
  EXPECT_NE(std::search(body.begin(), body.end(), uid1.begin(), uid1.end()), body.end());
  const Bytes irq6 = {0x89, 0x06, 0x00, 0x01, 0x01, 0x06, 0x00, 0x00, 0x00};
  EXPECT_NE(std::search(body.begin(), body.end(), irq6.begin(), irq6.end()), body.end());
  const Bytes base1 = {0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xd0};
  EXPECT_NE(std::search(body.begin(), body.end(), base1.begin(), base1.end()), body.end());
}

TEST(AmlTest, InterruptFlags) {
  EXPECT_EQ(aml::ExtendedInterrupt(false, false, 9)[3], 0x07);  // edge, active low
  EXPECT_EQ(aml::ExtendedInterrupt(true, true, 9)[3], 0x01);
}

}  // namespace
}  // namespace phoenix::vmm::x86
