// Everything a paused micro-VM is, apart from its RAM: the plain-value state a snapshot file holds
// and a restore sets back. Captured and applied by Machine (machine.cc) through KVM ioctls; encoded
// and checked by snapshot/snapshot_file.h. The KVM structs are kept as the kernel defines them, so
// the state is as complete as the kernel's own save/restore interface.
//
// Plain values; no threading concerns.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace phoenix::vmm {

struct VcpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_xcrs xcrs{};
  kvm_lapic_state lapic{};
  kvm_vcpu_events events{};
  kvm_mp_state mp_state{};
  kvm_debugregs debugregs{};
  std::vector<kvm_msr_entry> msrs;      // every MSR KVM_GET_MSR_INDEX_LIST reports that reads back
  std::vector<kvm_cpuid_entry2> cpuid;  // as set with KVM_SET_CPUID2 at boot
  uint64_t tsc_khz = 0;                 // KVM_GET_TSC_KHZ, 0 when unsupported
  // FPU/SSE/AVX state (KVM_GET_XSAVE; 4 KiB legacy area). Last on purpose: kvm_xsave ends in a
  // flexible array member (for KVM_GET_XSAVE2), which g++ refuses anywhere but at the end of an
  // enclosing struct. For the same reason it cannot be a std::expected's value type.
  kvm_xsave xsave{};
};

// What the machine was built with; restore rebuilds the same machine and refuses a mismatch.
struct MachineShape {
  uint32_t vcpus = 1;
  uint64_t memory_bytes = 0;
  bool has_net = false;
  std::array<uint8_t, 6> mac{};
};

struct DeviceStateBlob {
  std::string name;  // SnapshotState::SnapshotName()
  std::vector<uint8_t> state;
};

struct MachineState {
  MachineShape shape;
  std::vector<VcpuState> vcpus;
  std::array<kvm_irqchip, 3> irqchips{};  // PIC master, PIC slave, IOAPIC (KVM_GET_IRQCHIP)
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
  std::vector<DeviceStateBlob> devices;
};

}  // namespace phoenix::vmm
