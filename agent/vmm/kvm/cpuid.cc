#include "agent/vmm/kvm/cpuid.h"

namespace phoenix::vmm {
namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafExtFeatures = 0x7;
constexpr uint32_t kLeafTopology = 0xb;
constexpr uint32_t kLeafXsave = 0xd;
constexpr uint32_t kLeafTopologyV2 = 0x1f;

constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
// XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): AMX tile state lives beyond kvm_xsave's 4 KiB.
constexpr uint32_t kXcr0Amx = (1u << 17) | (1u << 18);
// Leaf 7.0 EDX: AMX-BF16 (22), AMX-TILE (24), AMX-INT8 (25).
constexpr uint32_t kLeaf7EdxAmx = (1u << 22) | (1u << 24) | (1u << 25);

}  // namespace

std::vector<kvm_cpuid_entry2> VcpuCpuid(std::span<const kvm_cpuid_entry2> supported,
                                        uint32_t apic_id, uint32_t vcpu_count) {
  std::vector<kvm_cpuid_entry2> out(supported.begin(), supported.end());
  for (auto& e : out) {
    switch (e.function) {
      case kLeafFeatures:
        // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package.
        e.ebx = (e.ebx & 0x0000ffffu) | (apic_id << 24) | ((vcpu_count & 0xffu) << 16);
        e.ecx |= kLeaf1EcxHypervisor;
        if (vcpu_count > 1)
          e.edx |= kLeaf1EdxHtt;
        else
          e.edx &= ~kLeaf1EdxHtt;
        break;
      case kLeafExtFeatures:
        if (e.index == 0) e.edx &= ~kLeaf7EdxAmx;
        break;
      case kLeafTopology:
      case kLeafTopologyV2:
        e.edx = apic_id;  // x2APIC id of this logical processor, in every sub-leaf
        break;
      case kLeafXsave:
        if (e.index == 0) e.eax &= ~kXcr0Amx;
        if (e.index == 17 || e.index == 18) e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      default:
        break;
    }
  }
  return out;
}

}  // namespace phoenix::vmm
