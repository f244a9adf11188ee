// The device set every phoenix-vmm machine has, wired onto a MicroVm the same way for a cold boot
// and for a restore (a snapshot's device states only fit the same devices at the same places):
// 8250 serial at COM1 0x3f8 on GSI 4, the i8042 reset line at 0x60, the CMOS clock at 0x70, and
// when the machine's shape has_net, virtio-net on the tap behind virtio-mmio slot 0
// (kVirtioMmioBase, GSI kVirtioFirstGsi) with the shape's MAC.
//
// Threading: call before the machine starts.
#pragma once

#include <vector>

#include "agent/vmm/arch/x86_64/linux_boot.h"
#include "agent/vmm/machine.h"
#include "agent/vmm/machine/micro_vm.h"

namespace phoenix::vmm {

inline constexpr uint64_t kSerialPort = 0x3f8;
inline constexpr uint64_t kI8042Port = 0x60;
inline constexpr uint64_t kCmosPort = 0x70;

// The machine's virtio-mmio slots, for the ACPI tables of a cold boot.
std::vector<VirtioMmioSlot> StandardVirtioSlots(const MachineShape& shape);

// `tap_fd` (taken over by the net device) is required when vm.shape().has_net.
Status AddStandardDevices(MicroVm& vm, ConsoleSink console, int tap_fd);

}  // namespace phoenix::vmm
