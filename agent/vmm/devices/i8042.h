// I8042: the part of the PC keyboard controller a micro-VM needs: the reset line (command 0xFE on
// port 0x64, how Linux's "reboot=k" and its fallback reboot path reset the machine), and enough
// of the controller protocol (status, command byte, self tests) that Linux's i8042 probe finds a
// controller with no keyboard or mouse attached instead of timing out. It raises no interrupts.
//
// Wiring: the machine inserts it on the I/O port bus at 0x60, length 5 (offset 0 = data port 0x60,
// offset 4 = status/command port 0x64). 0x61 inside that range is KVM's in-kernel speaker port
// and never reaches us.
//
// Ownership: holds the reset callback.
// Threading: Read/Write from vCPU threads, serialized by an internal mutex. The reset callback is
// called on the vCPU thread that wrote 0xFE, without the mutex held; it must only post the
// request (the machine stops its vCPUs with StopReason::kReset).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "agent/vmm/device.h"

namespace phoenix::vmm {

class I8042 : public BusDevice, public SnapshotState {
 public:
  explicit I8042(std::function<void()> on_reset);

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  std::string_view SnapshotName() const override { return "i8042"; }
  std::vector<uint8_t> SaveState() const override;
  Status LoadState(std::span<const uint8_t> state) override;

 private:
  uint8_t StatusRegister() const;

  const std::function<void()> on_reset_;
  mutable std::mutex mu_;
  uint8_t command_byte_ = 0x30;  // both ports disabled, no interrupts, translation off
  uint8_t pending_command_ = 0;  // a command awaiting its data byte on port 0x60 (0 = none)
  bool last_was_command_ = false;
  std::deque<uint8_t> output_;  // bytes for the guest to read from port 0x60
};

}  // namespace phoenix::vmm
