// CPUID a vCPU is given: KVM_GET_SUPPORTED_CPUID's table made specific to one vCPU of a machine
// (its APIC id in leaf 1 and the x2APIC topology leaves, the logical processor count, the
// hypervisor bit) with the features the monitor cannot snapshot (AMX's dynamic XSAVE state, which
// does not fit kvm_xsave's 4 KiB) removed. KVM's own signature leaves 0x40000000/0x40000001 pass
// through as the kernel reports them, so the guest finds kvm-clock.
//
// Pure functions over plain values.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

namespace phoenix::vmm {

std::vector<kvm_cpuid_entry2> VcpuCpuid(std::span<const kvm_cpuid_entry2> supported,
                                        uint32_t apic_id, uint32_t vcpu_count);

}  // namespace phoenix::vmm
