#include "agent/vmm/arch/x86_64/acpi.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "agent/vmm/arch/x86_64/boot_layout.h"

namespace phoenix::vmm::x86 {
namespace {

constexpr uint64_t kBase = 0xe0000;

uint64_t Le(const AcpiTables& t, uint64_t gpa, int size) {
  uint64_t value = 0;
  for (int i = 0; i < size; ++i) value |= uint64_t{t.bytes[gpa - t.base + i]} << (8 * i);
  return value;
}

std::string Text(const AcpiTables& t, uint64_t gpa, size_t size) {
  return std::string(reinterpret_cast<const char*>(t.bytes.data() + (gpa - t.base)), size);
}

uint8_t SumOfTable(const AcpiTables& t, uint64_t gpa) {
  return AcpiChecksum(t.bytes.data() + (gpa - t.base), Le(t, gpa + 4, 4));  // length field
}

AcpiTables Build(uint32_t vcpus, std::vector<VirtioMmioSlot> slots) {
  auto tables = BuildAcpiTables(kBase, vcpus, slots);
  EXPECT_TRUE(tables.has_value()) << tables.error().message;
  return tables.value_or(AcpiTables{});
}

TEST(AcpiTest, EveryChecksumSumsToZero) {
  const AcpiTables t = Build(2, {{0xd0000000, 0x1000, 5}, {0xd0001000, 0x1000, 6}});
  EXPECT_EQ(AcpiChecksum(t.bytes.data() + (t.rsdp - t.base), 20), 0);
  EXPECT_EQ(AcpiChecksum(t.bytes.data() + (t.rsdp - t.base), 36), 0);
  for (uint64_t table : {t.xsdt, t.fadt, t.madt, t.dsdt}) EXPECT_EQ(SumOfTable(t, table), 0);
}

TEST(AcpiTest, RsdpPointsToXsdtWhichListsFadtAndMadt) {
  const AcpiTables t = Build(1, {});
  EXPECT_EQ(t.rsdp, kBase);
  EXPECT_EQ(Text(t, t.rsdp, 8), "RSD PTR ");
  EXPECT_EQ(Le(t, t.rsdp + 15, 1), 2u);
  EXPECT_EQ(Le(t, t.rsdp + 20, 4), 36u);
  EXPECT_EQ(Le(t, t.rsdp + 24, 8), t.xsdt);
  EXPECT_EQ(Text(t, t.xsdt, 4), "XSDT");
  EXPECT_EQ(Le(t, t.xsdt + 4, 4), 36u + 16);
  EXPECT_EQ(Le(t, t.xsdt + 36, 8), t.fadt);
  EXPECT_EQ(Le(t, t.xsdt + 44, 8), t.madt);
}

TEST(AcpiTest, FadtIsHardwareReducedRevision6WithDsdt) {
  const AcpiTables t = Build(1, {{0xd0000000, 0x1000, 5}});
  EXPECT_EQ(Text(t, t.fadt, 4), "FACP");
  EXPECT_EQ(Le(t, t.fadt + 4, 4), 276u);
  EXPECT_EQ(Le(t, t.fadt + 8, 1), 6u);
  EXPECT_EQ(Le(t, t.fadt + 112, 4) & (1u << 20), 1u << 20);
  EXPECT_EQ(Le(t, t.fadt + 140, 8), t.dsdt);
  EXPECT_EQ(Le(t, t.fadt + 40, 4), t.dsdt);
  EXPECT_EQ(Le(t, t.fadt + 46, 2), 0u);  // no SCI
  EXPECT_EQ(Le(t, t.fadt + 56, 4), 0u);  // no PM1a event block
  EXPECT_EQ(Le(t, t.fadt + 76, 4), 0u);  // no PM timer
  EXPECT_EQ(Text(t, t.dsdt, 4), "DSDT");
  const std::string dsdt = Text(t, t.dsdt, Le(t, t.dsdt + 4, 4));
  EXPECT_NE(dsdt.find("LNRO0005"), std::string::npos);
}

TEST(AcpiTest, MadtHasOneEnabledLocalApicPerVcpuAndTheIoApic) {
  const AcpiTables t = Build(3, {});
  EXPECT_EQ(Text(t, t.madt, 4), "APIC");
  EXPECT_EQ(Le(t, t.madt + 36, 4), kLocalApicAddress);
  const uint64_t end = t.madt + Le(t, t.madt + 4, 4);
  int lapics = 0, ioapics = 0, others = 0;
  for (uint64_t p = t.madt + 44; p < end; p += Le(t, p + 1, 1)) {
    switch (Le(t, p, 1)) {
      case 0:
        EXPECT_EQ(Le(t, p + 1, 1), 8u);
        EXPECT_EQ(Le(t, p + 3, 1), static_cast<uint64_t>(lapics));  // APIC id
        EXPECT_EQ(Le(t, p + 4, 4), 1u);                             // enabled
        ++lapics;
        break;
      case 1:
        EXPECT_EQ(Le(t, p + 1, 1), 12u);
        EXPECT_EQ(Le(t, p + 2, 1), 0u);  // IOAPIC id
        EXPECT_EQ(Le(t, p + 4, 4), kIoApicAddress);
        EXPECT_EQ(Le(t, p + 8, 4), 0u);  // GSI base
        ++ioapics;
        break;
      default:
        ++others;  // e.g. an interrupt source override, which this machine must not have
    }
  }
  EXPECT_EQ(lapics, 3);
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(others, 0);
}

TEST(AcpiTest, EveryGenerationIdIsFreshAndInTheReservedHole) {
  auto memory = GuestMemory::CreateAnonymous(2 << 20);
  ASSERT_TRUE(memory.has_value());
  std::array<uint8_t, 16> first{}, second{};
  ASSERT_TRUE(WriteVmGenerationId(*memory));
  ASSERT_TRUE(memory->Read(kVmGenIdAddress, first));
  ASSERT_TRUE(WriteVmGenerationId(*memory));
  ASSERT_TRUE(memory->Read(kVmGenIdAddress, second));
  EXPECT_NE(first, second);
  EXPECT_NE(first, (std::array<uint8_t, 16>{}));
  // The guest's kernel never hands those bytes out as RAM.
  bool reserved = false;
  for (const E820Entry& e : E820Map(memory->size()))
    if (e.addr <= kVmGenIdAddress && kVmGenIdAddress + 16 <= e.addr + e.size)
      reserved = e.type == kE820Reserved;
  EXPECT_TRUE(reserved);
}

TEST(AcpiTest, Refusals) {
  EXPECT_FALSE(BuildAcpiTables(kBase, 0, {}).has_value());
  EXPECT_FALSE(BuildAcpiTables(kBase, 256, {}).has_value());
  EXPECT_FALSE(BuildAcpiTables(kBase + 4, 1, {}).has_value());
  auto beyond = BuildAcpiTables(kBase, 1, {{0xfffff000, 0x2000, 5}});
  ASSERT_FALSE(beyond.has_value());
  EXPECT_NE(beyond.error().message.find("32-bit"), std::string::npos);
}

}  // namespace
}  // namespace phoenix::vmm::x86
