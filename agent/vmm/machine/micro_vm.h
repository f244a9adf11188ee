// MicroVm: the machine core behind machine.h. It builds a KVM VM around a GuestMemory (TSS and
// identity-map pages, in-kernel irqchip and PIT, one memslot, vCPUs with their CPUID), runs one
// thread per vCPU with the exit dispatcher (port I/O and MMIO to the two buses, HLT, SHUTDOWN,
// SYSTEM_EVENT, FAIL_ENTRY, INTERNAL_ERROR), pauses by kicking every vCPU with a signal plus
// kvm_run.immediate_exit, and captures/applies MachineState. It knows nothing of Linux or of which
// devices exist: machine.cc builds the standard machine on it, tests drive it with raw guest code.
//
// Ownership: owns the KVM fds, the guest memory, the buses (and through them shares the devices)
// and the vCPU threads, which the destructor stops and joins before anything else goes away.
// Threading: configuration (buses, devices, vCPU state) before Start(); the Machine methods from
// one control thread; InterruptLine::Set from any thread; the exit dispatch on vCPU threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/vmm/bus.h"
#include "agent/vmm/device.h"
#include "agent/vmm/kvm/kvm.h"
#include "agent/vmm/machine.h"
#include "agent/vmm/memory.h"
#include "agent/vmm/snapshot/machine_state.h"

namespace phoenix::vmm {

// Outside RAM (<= 3 GiB) and below the IOAPIC: the pages Intel VMX borrows for real mode.
inline constexpr uint64_t kIdentityMapAddress = 0xfeffc000;
inline constexpr uint64_t kTssAddress = 0xfeffd000;

class MicroVm final : public Machine {
 public:
  using Clock = std::chrono::steady_clock;

  // Creates the VM for `shape` (vcpus, memory size) over `memory`. With `probe_msrs`, finds the
  // MSRs a snapshot saves (a cold boot); a restore passes false and takes the list from the
  // snapshot. `setup_start` is when the caller began, for MachineStats::setup_to_first_run.
  static Result<std::unique_ptr<MicroVm>> Create(const MachineShape& shape, GuestMemory memory,
                                                 bool probe_msrs, Clock::time_point setup_start);
  ~MicroVm() override;

  const GuestMemory& memory() const { return memory_; }
  Bus& io_bus() { return io_bus_; }
  Bus& mmio_bus() { return mmio_bus_; }
  const VmFd& vm() const { return vm_; }
  const VcpuFd& vcpu(size_t index) const { return vcpus_[index]; }
  size_t vcpu_count() const { return vcpus_.size(); }
  const MachineShape& shape() const { return shape_; }

  // An interrupt input on KVM_IRQ_LINE; a failing ioctl stops the machine with kFailed.
  std::shared_ptr<InterruptLine> Interrupt(uint32_t gsi);
  // Devices whose state enters snapshots (names must be unique) and devices with threads of their
  // own, quiesced while paused.
  Status AddSnapshotDevice(std::shared_ptr<SnapshotState> device);
  void AddBackgroundWork(std::shared_ptr<BackgroundWork> work);

  // Boot-time vCPU state a BIOS would leave: MSRs (SYSENTER, STAR family, TSC, MISC_ENABLE fast
  // strings, MTRR default write-back), FPU control words, LAPIC LINT0 = ExtINT, LINT1 = NMI.
  Status SetBootState();

  // Requires a paused (or never started) machine.
  Status CaptureState(MachineState& out) const;
  // Before Start(): sets every vCPU (per VcpuFd::ApplyState), then irqchips, PIT, clock, then the
  // devices' LoadState. Refuses a state of another shape or with a device this machine lacks.
  Status ApplyState(const MachineState& state);
  void set_restored(bool restored) { restored_ = restored; }
  // The guest asked for a reset (i8042 0xFE): stops every vCPU with StopReason::kReset. Callable
  // from a vCPU thread.
  void RequestReset() { Finish(StopReason::kReset, Error{}); }

  // Machine
  Status Start(std::function<void(StopReason)> on_stop) override;
  Status Pause() override;
  Status Resume() override;
  Status Snapshot(const std::string& dir) override;
  void RequestStop() override;
  StopReason stop_reason() const override;
  Error failure() const override;
  MachineStats Stats() const override;

 private:
  class Line;

  MicroVm(const MachineShape& shape, GuestMemory memory, Kvm kvm, VmFd vm,
          Clock::time_point setup_start);

  void VcpuLoop(size_t index);
  // Handles one exit; returns kRunning to go on. `needs_completion` is set when KVM must re-enter
  // to finish the instruction (I/O, MMIO) before the vCPU may park.
  StopReason HandleExit(const VcpuFd& vcpu, bool& needs_completion, Error& error);
  void HandleIo(kvm_run* run);
  void HandleMmio(kvm_run* run);
  // Records the end (first caller wins), kicks every vCPU; returns true for the first caller.
  bool Finish(StopReason reason, Error error);
  void KickAll();  // requires mu_

  GuestMemory memory_;  // first: outlives the VM and every device
  Kvm kvm_;
  VmFd vm_;
  MachineShape shape_;
  std::vector<VcpuFd> vcpus_;
  std::vector<std::vector<kvm_cpuid_entry2>> cpuid_;  // as set on each vCPU
  std::vector<uint32_t> msr_indices_;                 // saved in snapshots
  Bus io_bus_;
  Bus mmio_bus_;
  std::vector<std::shared_ptr<SnapshotState>> snapshot_devices_;
  std::vector<std::shared_ptr<BackgroundWork>> background_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  bool pause_requested_ = false;
  bool paused_ = false;  // Pause() completed and Resume() not yet called
  bool stop_requested_ = false;
  size_t parked_ = 0;
  size_t exited_ = 0;
  StopReason stop_reason_ = StopReason::kRunning;
  Error failure_;
  std::function<void(StopReason)> on_stop_;

  Clock::time_point setup_start_;
  std::once_flag first_run_once_;
  std::atomic<int64_t> setup_to_first_run_us_{0};
  bool restored_ = false;
  std::atomic<uint64_t> exits_{0};
  std::atomic<uint64_t> io_exits_{0};
  std::atomic<uint64_t> mmio_exits_{0};
  std::atomic<uint64_t> unhandled_io_{0};
  std::atomic<uint64_t> unhandled_mmio_{0};
};

}  // namespace phoenix::vmm
