// Machine: one micro-VM on /dev/kvm. It owns the KVM VM and vCPU file descriptors, guest memory,
// the in-kernel irqchip and PIT, the I/O and MMIO buses with their devices (8250 serial, i8042
// reset, CMOS clock, virtio-mmio net) and one thread per vCPU whose exit dispatcher routes port I/O
// and MMIO exits to the buses. It boots an x86-64 Linux kernel cold, or restores a snapshot.
//
// Memory map (guest physical): RAM from 0 up to memory size (<= 3 GiB); virtio-mmio devices at
// kVirtioMmioBase + i * kVirtioMmioStride on GSI kVirtioFirstGsi + i; IOAPIC 0xFEC00000; LAPIC
// 0xFEE00000. Serial COM1 0x3f8 on GSI 4. The guest learns the virtio devices from ACPI tables
// (DSDT "LNRO0005" devices), so stock distribution kernels need no virtio_mmio.device= option.
//
// Ownership: the caller owns the Machine; the Machine owns everything above and joins its vCPU
// threads in its destructor (after stopping them).
// Threading: the public methods are called from one control thread (phoenix-vmm's main loop). The
// console sink and the exit callback are invoked on vCPU threads; they must not call Pause,
// Snapshot or the destructor (post to the control thread instead).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

inline constexpr uint64_t kVirtioMmioBase = 0xd0000000;
inline constexpr uint64_t kVirtioMmioStride = 0x1000;
inline constexpr uint32_t kVirtioFirstGsi = 5;
inline constexpr uint32_t kSerialGsi = 4;
// The generic event device's line: a pulse makes the guest re-read its VM generation id.
inline constexpr uint32_t kGenerationIdGsi = 23;

// Bytes the guest wrote to its serial console, in order (called on a vCPU thread).
using ConsoleSink = std::function<void(std::span<const uint8_t>)>;

struct NetConfig {
  int tap_fd = -1;  // an open tap (IFF_TAP | IFF_NO_PI) or any fd carrying whole Ethernet frames
  std::array<uint8_t, 6> mac{0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
};

struct BootConfig {
  uint32_t vcpus = 1;
  uint64_t memory_bytes = 128ull << 20;
  std::string kernel_path;  // ELF vmlinux or bzImage, both entered at their 64-bit entry point
  std::string initrd_path;  // optional
  std::string cmdline;      // the monitor appends nothing the caller did not ask for
  bool with_net = false;
  NetConfig net;
  ConsoleSink console;
};

struct RestoreConfig {
  std::string snapshot_dir;
  NetConfig
      net;  // the snapshot says whether the machine has a net device; its MAC comes from there
  ConsoleSink console;
};

enum class StopReason {
  kRunning,    // not stopped
  kShutdown,   // guest powered off / halted for good
  kReset,      // guest asked for a reset (i8042 0xFE, triple fault): phoenix-vmm exits, the agent
               // restarts it
  kRequested,  // RequestStop
  kFailed,     // a KVM or device error; see Machine::failure()
};

struct MachineStats {
  uint32_t vcpus = 0;
  uint64_t memory_bytes = 0;
  uint64_t guest_resident_bytes = 0;  // guest RAM pages present in this process
  uint64_t exits = 0;                 // KVM_RUN returns across vCPUs
  uint64_t io_exits = 0;
  uint64_t mmio_exits = 0;
  // Guest accesses no device claimed (reads see all-ones, writes are dropped): Linux probes many
  // ports that this machine does not have.
  uint64_t unhandled_io = 0;
  uint64_t unhandled_mmio = 0;
  bool paused = false;
  // How this machine came up: for a cold boot, from Boot() entry to the first KVM_RUN; for a
  // restore, from Restore() entry (snapshot read, memory mapped, VM built, state set) to the first
  // KVM_RUN. Measured with CLOCK_MONOTONIC.
  std::chrono::microseconds setup_to_first_run{0};
  bool restored = false;
};

class Machine {
 public:
  // Builds a fresh machine and loads the kernel; no vCPU runs until Start().
  static Result<std::unique_ptr<Machine>> Boot(const BootConfig& config);
  // Validates the snapshot (refusing anything corrupt, truncated or of another version), maps its
  // memory MAP_PRIVATE, rebuilds the same machine and sets every vCPU, irqchip, PIT, clock and
  // device state. No vCPU runs until Start().
  static Result<std::unique_ptr<Machine>> Restore(const RestoreConfig& config);

  virtual ~Machine() = default;

  // Starts the vCPU threads. `on_stop` is called once, on the vCPU thread that saw the end.
  virtual Status Start(std::function<void(StopReason)> on_stop) = 0;
  // Returns once every vCPU is out of KVM_RUN and parked (kicked with a signal and immediate_exit).
  virtual Status Pause() = 0;
  virtual Status Resume() = 0;
  // Requires Pause(). Captures the state and writes snapshot/snapshot_file.h's layout into `dir`.
  virtual Status Snapshot(const std::string& dir) = 0;
  // Asks every vCPU to stop; returns at once. on_stop(kRequested) follows.
  virtual void RequestStop() = 0;

  virtual StopReason stop_reason() const = 0;
  virtual Error failure() const = 0;  // meaningful when stop_reason() == kFailed
  virtual MachineStats Stats() const = 0;
};

}  // namespace phoenix::vmm
