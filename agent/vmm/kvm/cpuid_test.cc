#include "agent/vmm/kvm/cpuid.h"

#include <gtest/gtest.h>

namespace phoenix::vmm {
namespace {

kvm_cpuid_entry2 Entry(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                       uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

const kvm_cpuid_entry2* Find(const std::vector<kvm_cpuid_entry2>& v, uint32_t f, uint32_t i) {
  for (const auto& e : v)
    if (e.function == f && e.index == i) return &e;
  return nullptr;
}

std::vector<kvm_cpuid_entry2> Supported() {
  return {
      Entry(0x0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
      Entry(0x1, 0, 0x806f8, 0xff0a0800, 0x7ffaf203, 0x178bfbff),
      Entry(0x7, 0, 0, 0x1234, 0, 0xffffffff),
      Entry(0xb, 0, 1, 1, 0x100, 0xff),
      Entry(0xb, 1, 4, 2, 0x201, 0xff),
      Entry(0xd, 0, 0x600e7, 0x340, 0x2b00, 0),
      Entry(0xd, 17, 0x40, 0xac0, 2, 0),
      Entry(0x1f, 0, 1, 1, 0x100, 0xff),
      Entry(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
      Entry(0x40000001, 0, 0x01007afb, 0, 0, 0),
  };
}

TEST(VcpuCpuidTest, Leaf1CarriesApicIdCountAndHypervisorBit) {
  auto out = VcpuCpuid(Supported(), 3, 4);
  const auto* leaf1 = Find(out, 1, 0);
  ASSERT_NE(leaf1, nullptr);
  EXPECT_EQ(leaf1->ebx >> 24, 3u);
  EXPECT_EQ((leaf1->ebx >> 16) & 0xff, 4u);
  EXPECT_EQ(leaf1->ebx & 0xffff, 0x0800u);  // CLFLUSH size and brand index kept
  EXPECT_NE(leaf1->ecx & (1u << 31), 0u);
  EXPECT_NE(leaf1->edx & (1u << 28), 0u);
  EXPECT_EQ(leaf1->eax, 0x806f8u);
}

TEST(VcpuCpuidTest, SingleVcpuClearsHtt) {
  auto out = VcpuCpuid(Supported(), 0, 1);
  const auto* leaf1 = Find(out, 1, 0);
  ASSERT_NE(leaf1, nullptr);
  EXPECT_EQ(leaf1->ebx >> 24, 0u);
  EXPECT_EQ(leaf1->edx & (1u << 28), 0u);
}

TEST(VcpuCpuidTest, TopologyLeavesCarryX2ApicId) {
  auto out = VcpuCpuid(Supported(), 7, 8);
  EXPECT_EQ(Find(out, 0xb, 0)->edx, 7u);
  EXPECT_EQ(Find(out, 0xb, 1)->edx, 7u);
  EXPECT_EQ(Find(out, 0x1f, 0)->edx, 7u);
  EXPECT_EQ(Find(out, 0xb, 1)->ecx, 0x201u);  // level type kept
}

TEST(VcpuCpuidTest, AmxRemovedSoXsaveFitsFourKiB) {
  auto out = VcpuCpuid(Supported(), 0, 1);
  EXPECT_EQ(Find(out, 0xd, 0)->eax, 0xe7u);
  EXPECT_EQ(Find(out, 0xd, 17)->eax, 0u);
  EXPECT_EQ(Find(out, 7, 0)->edx & ((1u << 22) | (1u << 24) | (1u << 25)), 0u);
  EXPECT_EQ(Find(out, 7, 0)->ebx, 0x1234u);
}

TEST(VcpuCpuidTest, KvmSignatureLeavesPassThrough) {
  auto out = VcpuCpuid(Supported(), 1, 2);
  ASSERT_EQ(out.size(), Supported().size());
  const auto* sig = Find(out, 0x40000000, 0);
  ASSERT_NE(sig, nullptr);
  EXPECT_EQ(sig->ebx, 0x4b4d564bu);
  EXPECT_EQ(Find(out, 0x40000001, 0)->eax, 0x01007afbu);
}

}  // namespace
}  // namespace phoenix::vmm
