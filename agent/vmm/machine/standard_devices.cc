#include "agent/vmm/machine/standard_devices.h"

#include <memory>

#include "agent/vmm/devices/cmos.h"
#include "agent/vmm/devices/i8042.h"
#include "agent/vmm/devices/serial.h"
#include "agent/vmm/devices/virtio/mmio.h"
#include "agent/vmm/devices/virtio/net.h"

namespace phoenix::vmm {

std::vector<VirtioMmioSlot> StandardVirtioSlots(const MachineShape& shape) {
  if (!shape.has_net) return {};
  return {VirtioMmioSlot{kVirtioMmioBase, kVirtioMmioStride, kVirtioFirstGsi}};
}

Status AddStandardDevices(MicroVm& vm, ConsoleSink console, int tap_fd) {
  auto serial = std::make_shared<Serial8250>(vm.Interrupt(kSerialGsi), std::move(console));
  if (auto r = vm.io_bus().Insert(kSerialPort, 8, serial); !r) return r;
  if (auto r = vm.AddSnapshotDevice(serial); !r) return r;

  MicroVm* machine = &vm;  // the device lives on the machine's bus, so never outlives it
  auto i8042 = std::make_shared<I8042>([machine] { machine->RequestReset(); });
  if (auto r = vm.io_bus().Insert(kI8042Port, 5, i8042); !r) return r;
  if (auto r = vm.AddSnapshotDevice(i8042); !r) return r;

  auto cmos = std::make_shared<Cmos>(vm.memory().size());
  if (auto r = vm.io_bus().Insert(kCmosPort, 2, cmos); !r) return r;
  if (auto r = vm.AddSnapshotDevice(cmos); !r) return r;

  if (!vm.shape().has_net) return {};
  if (tap_fd < 0) return Fail("the machine has virtio-net but no tap fd was given");
  auto net = VirtioNet::Create(tap_fd, vm.shape().mac);
  if (!net) return std::unexpected(net.error());
  auto transport =
      std::make_shared<VirtioMmio>("virtio-net0", *net, vm.memory(), vm.Interrupt(kVirtioFirstGsi));
  if (auto r = vm.mmio_bus().Insert(kVirtioMmioBase, kVirtioMmioStride, transport); !r) return r;
  if (auto r = vm.AddSnapshotDevice(transport); !r) return r;
  vm.AddBackgroundWork(*net);
  return {};
}

}  // namespace phoenix::vmm
