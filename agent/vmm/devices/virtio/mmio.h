// VirtioMmio: the virtio-mmio version 2 transport (virtio 1.x spec section 4.2, register offsets
// of <linux/virtio_mmio.h>) in front of one VirtioDevice: magic/version/ids, feature negotiation
// (VIRTIO_F_VERSION_1 always offered and required at FEATURES_OK), queue setup, notify, interrupt
// status/ack, device status with reset, config generation and the device's config space at 0x100.
// Its interrupt line is a level: high while InterruptStatus != 0.
//
// Wiring: the machine inserts slot i on the MMIO bus at kVirtioMmioBase + i * kVirtioMmioStride,
// length kVirtioMmioStride (machine.h), with the InterruptLine of GSI kVirtioFirstGsi + i; the
// ACPI tables describe the same range and GSI (LNRO0005, level, active high).
//
// Ownership: shares the device; refers to GuestMemory, which must outlive the transport. The
// virtqueues are owned here and lent to the device from Activate until Reset.
// Threading: Read/Write come from vCPU threads and are serialized by an internal mutex. The
// device's backend thread signals interrupts through VirtioInterrupt, which takes only a separate
// interrupt mutex, so a register write that resets the device (and joins its thread while
// holding the register mutex) cannot deadlock against it. SaveState/LoadState need the vCPUs
// paused and the device quiesced (BackgroundWork), as device.h requires.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/vmm/device.h"
#include "agent/vmm/devices/virtio/queue.h"
#include "agent/vmm/memory.h"

namespace phoenix::vmm {

inline constexpr uint32_t kVirtioInterruptUsedBuffer = 0x1;  // VIRTIO_MMIO_INT_VRING
inline constexpr uint32_t kVirtioInterruptConfig = 0x2;      // VIRTIO_MMIO_INT_CONFIG

// How a device tells the driver it has used buffers or changed its configuration. Any thread.
class VirtioInterrupt {
 public:
  virtual ~VirtioInterrupt() = default;
  virtual void Signal(uint32_t bits) = 0;  // kVirtioInterrupt* bits
};

// A virtio device behind a transport. The transport calls everything but the backend's own work
// on vCPU threads (under its register mutex) or, for SaveState/LoadState, with the machine paused.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;  // VIRTIO_ID_*
  // Device feature bits; the transport adds VIRTIO_F_VERSION_1.
  virtual uint64_t features() const = 0;
  virtual uint32_t num_queues() const = 0;
  virtual uint16_t max_queue_size() const = 0;
  // Device config space; offset is relative to 0x100. Reads outside the space read zeros.
  virtual void ReadConfig(uint64_t offset, std::span<uint8_t> data) const = 0;
  virtual void WriteConfig(uint64_t offset, std::span<const uint8_t> data) = 0;
  // DRIVER_OK: the queues (num_queues() of them, each ready and valid) are lent until Reset;
  // `features` is what the driver accepted. A failure leaves the device inactive and sets
  // DEVICE_NEEDS_RESET.
  virtual Status Activate(std::span<Virtqueue> queues, const GuestMemory& memory,
                          std::shared_ptr<VirtioInterrupt> interrupt, uint64_t features) = 0;
  virtual void QueueNotify(uint32_t index) = 0;
  // Back to the initial state: stops touching the lent queues before returning.
  virtual void Reset() = 0;
  // Device-specific state (queue positions are the transport's). LoadState comes before
  // Activate on restore.
  virtual std::vector<uint8_t> SaveState() const = 0;
  virtual Status LoadState(std::span<const uint8_t> state) = 0;
};

class VirtioMmio : public BusDevice, public SnapshotState {
 public:
  static constexpr uint32_t kVendorId = 0x50484e58;  // "PHNX"

  VirtioMmio(std::string snapshot_name, std::shared_ptr<VirtioDevice> device,
             const GuestMemory& memory, std::shared_ptr<InterruptLine> irq);
  ~VirtioMmio() override;

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  std::string_view SnapshotName() const override { return name_; }
  std::vector<uint8_t> SaveState() const override;
  // On a transport whose state says DRIVER_OK, rebuilds the queues at their saved addresses and
  // positions, loads the device's state and activates it again; re-asserts the line if an
  // interrupt was pending.
  Status LoadState(std::span<const uint8_t> state) override;

  uint32_t status() const;

 private:
  class Interrupt;
  struct QueueRegisters {
    VirtqueueConfig config;
    bool ready = false;
  };

  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);
  void WriteStatus(uint32_t value);
  Status ActivateDevice(const std::vector<VirtqueuePosition>& positions);
  void ResetLocked();
  uint64_t OfferedFeatures() const;

  const std::string name_;
  const std::shared_ptr<VirtioDevice> device_;
  const GuestMemory& memory_;
  const std::shared_ptr<Interrupt> interrupt_;

  mutable std::mutex mu_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  std::vector<QueueRegisters> queue_regs_;
  std::vector<Virtqueue> queues_;  // non-empty while the device is active
  bool active_ = false;
};

}  // namespace phoenix::vmm
