#include "agent/vmm/machine/standard_devices.h"

#include <memory>

#include "agent/vmm/devices/cmos.h"
#include "agent/vmm/devices/i8042.h"
#include "agent/vmm/devices/serial.h"

namespace phoenix::vmm {

Status AddStandardDevices(MicroVm& vm, ConsoleSink console) {
  auto serial = std::make_shared<Serial8250>(vm.Interrupt(kSerialGsi), std::move(console));
  if (auto r = vm.io_bus().Insert(kSerialPort, 8, serial); !r) return r;
  if (auto r = vm.AddSnapshotDevice(serial); !r) return r;

  MicroVm* machine = &vm;  // the device lives on the machine's bus, so never outlives it
  auto i8042 = std::make_shared<I8042>([machine] { machine->RequestReset(); });
  if (auto r = vm.io_bus().Insert(kI8042Port, 5, i8042); !r) return r;
  if (auto r = vm.AddSnapshotDevice(i8042); !r) return r;

  auto cmos = std::make_shared<Cmos>(vm.memory().size());
  if (auto r = vm.io_bus().Insert(kCmosPort, 2, cmos); !r) return r;
  return vm.AddSnapshotDevice(cmos);
}

}  // namespace phoenix::vmm
