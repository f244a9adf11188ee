// The contracts between the machine and its emulated devices: how a guest access reaches a device
// (BusDevice), how a device raises an interrupt (InterruptLine), and how a device's state enters
// and leaves a snapshot (SnapshotState).
//
// Threading: BusDevice::Read/Write are called on vCPU threads, possibly several at once, and a
// device with a backend thread (virtio-net's tap reader) is also called from there: every device
// guards its own state. InterruptLine::Set may be called from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the base the device was inserted at; data.size() is 1, 2, 4 or 8.
  // Reads fill all of `data`; a device answers registers it does not have with zeros.
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// One interrupt input of the guest's interrupt controller (a GSI of the in-kernel IOAPIC/PIC).
// Devices report their level: Set(true) while they have an interrupt pending, Set(false) once the
// guest has acknowledged it. An edge-triggered pin sees the rising edge; a level-triggered pin
// stays asserted until the device lowers it.
class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  virtual void Set(bool level) = 0;
};

// A device whose state must survive snapshot/restore (registers, virtqueue positions, FIFOs).
// Save is called while every vCPU is paused; Load before any vCPU runs. Load must refuse state it
// cannot use (wrong size, impossible values) rather than guess.
class SnapshotState {
 public:
  virtual ~SnapshotState() = default;
  // Stable identifier of this device instance in the snapshot, e.g. "serial0", "virtio-net0".
  virtual std::string_view SnapshotName() const = 0;
  virtual std::vector<uint8_t> SaveState() const = 0;
  virtual Status LoadState(std::span<const uint8_t> state) = 0;
};

// A device that touches guest memory or raises interrupts from a thread of its own (virtio-net's
// tap reader). Quiesce returns once that thread has stopped doing so; Resume lets it go on. The
// machine quiesces every such device after parking the vCPUs (pause, snapshot) and resumes them
// before the vCPUs run again, so a snapshot never sees guest memory change underneath it.
class BackgroundWork {
 public:
  virtual ~BackgroundWork() = default;
  virtual void Quiesce() = 0;
  virtual void Resume() = 0;
};

}  // namespace phoenix::vmm
