// Machine::Boot: the standard machine on MicroVm with a Linux kernel loaded for a cold boot.
#include <memory>

#include "agent/vmm/arch/x86_64/linux_boot.h"
#include "agent/vmm/machine.h"
#include "agent/vmm/machine/micro_vm.h"
#include "agent/vmm/machine/standard_devices.h"

namespace phoenix::vmm {

Result<std::unique_ptr<Machine>> Machine::Boot(const BootConfig& config) {
  const auto start = MicroVm::Clock::now();
  auto fail = [](const Error& e) { return std::unexpected(Context("boot", e)); };
  auto memory = GuestMemory::CreateAnonymous(config.memory_bytes);
  if (!memory) return fail(memory.error());
  MachineShape shape;
  shape.vcpus = config.vcpus;
  shape.memory_bytes = config.memory_bytes;
  shape.has_net = config.with_net;
  if (config.with_net) shape.mac = config.net.mac;
  auto vm = MicroVm::Create(shape, std::move(*memory), /*probe_msrs=*/true, start);
  if (!vm) return fail(vm.error());
  if (auto r = AddStandardDevices(**vm, config.console, config.net.tap_fd); !r)
    return fail(r.error());

  LinuxBootRequest request;
  request.kernel_path = config.kernel_path;
  request.initrd_path = config.initrd_path;
  request.cmdline = config.cmdline;
  request.vcpus = config.vcpus;
  request.virtio = StandardVirtioSlots(shape);
  auto entry = LoadLinux((*vm)->memory(), request);
  if (!entry) return fail(entry.error());
  if (auto r = (*vm)->SetBootState(); !r) return fail(r.error());
  const VcpuFd& bsp = (*vm)->vcpu(0);
  auto regs = bsp.GetRegs();
  if (!regs) return fail(regs.error());
  auto sregs = bsp.GetSregs();
  if (!sregs) return fail(sregs.error());
  SetLongModeEntry(*entry, *regs, *sregs);
  if (auto r = bsp.SetSregs(*sregs); !r) return fail(r.error());
  if (auto r = bsp.SetRegs(*regs); !r) return fail(r.error());
  return std::unique_ptr<Machine>(std::move(*vm));
}

}  // namespace phoenix::vmm
