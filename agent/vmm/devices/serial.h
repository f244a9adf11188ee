// Serial8250: a 16550A-compatible UART, the guest's console (Linux's 8250 driver and earlycon).
// Output is immediate: every byte written to THR goes straight to the console sink, so THR is
// always empty (LSR THRE|TEMT always set) and a THRE interrupt follows every write when enabled.
// Input bytes queued with QueueInput are read from RBR in order (DR set while any are queued).
// MCR loopback routes THR back to RBR and reflects MCR into MSR, which the driver's probe checks.
//
// Wiring: the machine inserts it on the I/O port bus at COM1 0x3f8, length 8, with the
// InterruptLine of GSI 4 (kSerialGsi). The device reports its level (high while an enabled
// interrupt is pending) and lowers then raises the line when a new THRE interrupt follows a THR
// write, so an edge-triggered pin sees every interrupt.
//
// Ownership: holds the interrupt line and the console sink. No threads of its own.
// Threading: Read/Write (vCPU threads), QueueInput (any thread) and SaveState/LoadState are
// serialized by an internal mutex. The console sink and InterruptLine::Set are called with that
// mutex held (keeping console bytes in order); they must not call back into this device.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "agent/vmm/device.h"

namespace phoenix::vmm {

class Serial8250 : public BusDevice, public SnapshotState {
 public:
  using Console = std::function<void(std::span<const uint8_t>)>;
  // Input bytes beyond this many unread ones are dropped (the guest is not reading).
  static constexpr size_t kMaxQueuedInput = 64 * 1024;

  // `irq` must not be null; `console` may be empty (output discarded).
  Serial8250(std::shared_ptr<InterruptLine> irq, Console console);

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Bytes the guest will read from RBR. Returns how many were accepted.
  size_t QueueInput(std::span<const uint8_t> bytes);

  std::string_view SnapshotName() const override { return "serial0"; }
  std::vector<uint8_t> SaveState() const override;
  // Also re-asserts the interrupt line when the restored state has an interrupt pending (the
  // irqchip snapshot does not record which sources drive a line).
  Status LoadState(std::span<const uint8_t> state) override;

 private:
  uint8_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint8_t value);
  uint8_t InterruptIdentification() const;  // IIR without the FIFO bits
  uint8_t ModemStatus() const;
  void UpdateLine();

  const std::shared_ptr<InterruptLine> irq_;
  const Console console_;

  mutable std::mutex mu_;
  uint8_t dll_ = 0x0c;  // 9600 baud, what a PC BIOS leaves
  uint8_t dlm_ = 0;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = 0x08;  // OUT2
  uint8_t scr_ = 0;
  uint8_t fcr_ = 0;
  bool thre_pending_ = false;  // THR-empty interrupt not yet acknowledged by an IIR read
  bool line_level_ = false;
  std::deque<uint8_t> input_;
};

}  // namespace phoenix::vmm
