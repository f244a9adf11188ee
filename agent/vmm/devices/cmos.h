// Cmos: the MC146818 RTC/NVRAM of a PC. The time registers read the host's clock (UTC) at the
// moment of the read, so a restored guest sees the real time, not the snapshot's; the guest's
// writes to the time registers are accepted and ignored (the host clock stays authoritative).
// Time is BCD unless register B's DM bit says binary, and 24-hour unless its 24/12 bit is clear
// (then 12-hour with bit 7 = PM, as the chip does). Registers A-D: A reports the 32.768 kHz
// divider and never update-in-progress; C reads as 0 (no RTC interrupts: the device raises none);
// D reports valid RAM and time. The memory-size bytes (0x15-0x18, 0x30-0x31, 0x34-0x35,
// 0x5b-0x5d) describe the guest's RAM the way a PC BIOS does. Other bytes are plain NVRAM.
//
// Wiring: the machine inserts it on the I/O port bus at 0x70, length 2 (0x70 index with bit 7 the
// NMI mask, 0x71 data).
// Ownership: plain state; the clock function is copied.
// Threading: Read/Write and SaveState/LoadState serialized by an internal mutex.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "agent/vmm/device.h"

namespace phoenix::vmm {

class Cmos : public BusDevice, public SnapshotState {
 public:
  // Seconds since the epoch, UTC; tests pass a fixed clock.
  using Clock = std::function<std::time_t()>;

  explicit Cmos(uint64_t memory_bytes, Clock clock = nullptr);

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  std::string_view SnapshotName() const override { return "cmos"; }
  std::vector<uint8_t> SaveState() const override;
  Status LoadState(std::span<const uint8_t> state) override;

 private:
  uint8_t ReadRegister(uint8_t index) const;

  const Clock clock_;
  mutable std::mutex mu_;
  uint8_t index_ = 0;
  std::array<uint8_t, 128> nvram_{};
};

}  // namespace phoenix::vmm
