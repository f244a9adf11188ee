// Machine::Restore: the standard machine on MicroVm, rebuilt from a snapshot directory.
#include "agent/vmm/machine.h"

#include <memory>

#include "agent/vmm/arch/x86_64/acpi.h"
#include "agent/vmm/machine/micro_vm.h"
#include "agent/vmm/machine/standard_devices.h"
#include "agent/vmm/snapshot/snapshot_file.h"

namespace phoenix::vmm {

Result<std::unique_ptr<Machine>> Machine::Restore(const RestoreConfig& config) {
  const auto start = MicroVm::Clock::now();
  auto fail = [&](const Error& e) {
    return std::unexpected(Context("restore " + config.snapshot_dir, e));
  };
  auto state = ReadSnapshotState(config.snapshot_dir);
  if (!state) return fail(state.error());
  if (state->shape.has_net && config.net.tap_fd < 0)
    return Fail("restore " + config.snapshot_dir + ": the snapshot has virtio-net; pass a tap fd");
  auto memory = GuestMemory::MapPrivateFile(config.snapshot_dir + "/" + kMemoryFileName,
                                            state->shape.memory_bytes);
  if (!memory) return fail(memory.error());
  auto vm = MicroVm::Create(state->shape, std::move(*memory), /*probe_msrs=*/false, start);
  if (!vm) return fail(vm.error());
  if (auto r = AddStandardDevices(**vm, config.console, config.net.tap_fd); !r)
    return fail(r.error());
  if (auto r = (*vm)->ApplyState(*state); !r) return fail(r.error());
  // A clone must not keep its snapshot's RNG: a fresh generation id, and the event (an edge on
  // the generic event device's line, delivered when a vCPU runs) that makes the guest's vmgenid
  // driver read it and reseed. A snapshot without the device ignores both: the id sits in
  // reserved memory and the line's IOAPIC pin stays masked.
  if (auto r = x86::WriteVmGenerationId((*vm)->memory()); !r) return fail(r.error());
  for (bool level : {true, false})
    if (auto r = (*vm)->vm().SetIrqLine(kGenerationIdGsi, level); !r)
      return fail(Context("raising the VM generation id event", r.error()));
  (*vm)->set_restored(true);
  return std::unique_ptr<Machine>(std::move(*vm));
}

}  // namespace phoenix::vmm
