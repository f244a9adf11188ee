// The device set every phoenix-vmm machine has, wired onto a MicroVm the same way for a cold boot
// and for a restore (a snapshot's device states only fit the same devices at the same places):
// 8250 serial at COM1 0x3f8 on GSI 4, the i8042 reset line at 0x60, the CMOS clock at 0x70.
//
// Threading: call before the machine starts.
#pragma once

#include "agent/vmm/machine.h"
#include "agent/vmm/machine/micro_vm.h"

namespace phoenix::vmm {

inline constexpr uint64_t kSerialPort = 0x3f8;
inline constexpr uint64_t kI8042Port = 0x60;
inline constexpr uint64_t kCmosPort = 0x70;

Status AddStandardDevices(MicroVm& vm, ConsoleSink console);

}  // namespace phoenix::vmm
