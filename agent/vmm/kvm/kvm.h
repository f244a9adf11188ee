// Thin, checked wrappers over the three kinds of KVM file descriptor: the system fd (/dev/kvm:
// API version, capabilities, supported CPUID, MSR index list), a VM fd (memslots, irqchip, PIT,
// IRQ lines, VM-wide state) and a vCPU fd (its mmap'd kvm_run, KVM_RUN and every get/set of
// VcpuState). Every ioctl's result is checked and reported as Errno("KVM_...").
//
// Ownership: each object owns its fd (closed on destruction); VcpuFd also owns its kvm_run mapping.
// All are move-only.
// Threading: the objects hold no mutable state of their own beyond the fd, so calls are as
// thread-safe as the kernel makes them: KVM serializes ioctls on one vCPU, and a VcpuFd's state
// get/set calls are only meaningful while that vCPU is not inside KVM_RUN (the machine parks it).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agent/vmm/result.h"
#include "agent/vmm/snapshot/machine_state.h"

namespace phoenix::vmm {

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept;
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

class VcpuFd;

class VmFd {
 public:
  VmFd(Fd fd, size_t vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

  int fd() const { return fd_.get(); }

  Status SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size, void* host) const;
  // Three pages for the real-mode TSS Intel's VMX needs, and one page for its identity map; both
  // must lie outside RAM and any device, and must be set before the first vCPU is created.
  Status SetTssAddress(uint64_t address) const;
  Status SetIdentityMapAddress(uint64_t address) const;
  Status CreateIrqchip() const;  // PIC pair + IOAPIC in the kernel; every vCPU gets a LAPIC
  Status CreatePit2() const;     // in-kernel i8254, with the dummy speaker at port 0x61
  Status SetIrqLine(uint32_t gsi, bool level) const;

  Result<kvm_irqchip> GetIrqchip(uint32_t chip_id) const;  // KVM_IRQCHIP_PIC_MASTER/SLAVE/IOAPIC
  Status SetIrqchip(const kvm_irqchip& chip) const;
  Result<kvm_pit_state2> GetPit2() const;
  Status SetPit2(const kvm_pit_state2& pit) const;
  Result<kvm_clock_data> GetClock() const;
  Status SetClock(const kvm_clock_data& clock) const;

  Result<VcpuFd> CreateVcpu(uint32_t id) const;

 private:
  Fd fd_;
  size_t vcpu_mmap_size_;
};

class VcpuFd {
 public:
  VcpuFd(Fd fd, kvm_run* run, size_t run_size, uint32_t id)
      : fd_(std::move(fd)), run_(run), run_size_(run_size), id_(id) {}
  VcpuFd(VcpuFd&& other) noexcept;
  VcpuFd& operator=(VcpuFd&& other) noexcept;
  VcpuFd(const VcpuFd&) = delete;
  VcpuFd& operator=(const VcpuFd&) = delete;
  ~VcpuFd();

  int fd() const { return fd_.get(); }
  uint32_t id() const { return id_; }
  kvm_run* run() const { return run_; }

  // One KVM_RUN. An error with sys_errno EINTR means a signal or immediate_exit ended it early
  // (the caller's pause/stop path), not a failure.
  Status Run() const;

  Result<kvm_regs> GetRegs() const;
  Status SetRegs(const kvm_regs& regs) const;
  Result<kvm_sregs> GetSregs() const;
  Status SetSregs(const kvm_sregs& sregs) const;
  Status SetFpu(const kvm_fpu& fpu) const;
  // Out-parameter: kvm_xsave ends in a flexible array, which std::expected cannot hold.
  Status GetXsave(kvm_xsave& out) const;
  Status SetXsave(const kvm_xsave& xsave) const;
  Result<kvm_xcrs> GetXcrs() const;
  Status SetXcrs(const kvm_xcrs& xcrs) const;
  Result<kvm_lapic_state> GetLapic() const;
  Status SetLapic(const kvm_lapic_state& lapic) const;
  Result<kvm_vcpu_events> GetVcpuEvents() const;
  Status SetVcpuEvents(const kvm_vcpu_events& events) const;
  Result<kvm_mp_state> GetMpState() const;
  Status SetMpState(const kvm_mp_state& state) const;
  Result<kvm_debugregs> GetDebugRegs() const;
  Status SetDebugRegs(const kvm_debugregs& regs) const;
  // Reads the given MSRs; fails naming the first index the kernel would not read.
  Result<std::vector<kvm_msr_entry>> GetMsrs(std::span<const uint32_t> indices) const;
  // Sets all of `msrs`; fails naming the first one the kernel refused.
  Status SetMsrs(std::span<const kvm_msr_entry> msrs) const;
  Status SetCpuid(std::span<const kvm_cpuid_entry2> entries) const;
  // 0 when the kernel cannot report it (no KVM_CAP_GET_TSC_KHZ).
  Result<uint64_t> GetTscKhz() const;
  Status SetTscKhz(uint64_t khz) const;

  // Of `indices`, the MSRs this vCPU reads and accepts back unchanged (KVM_GET_MSR_INDEX_LIST
  // names some that a given CPU model does not implement). Call on a fresh vCPU, once per machine.
  std::vector<uint32_t> ProbeSaveableMsrs(std::span<const uint32_t> indices) const;

  // Everything machine_state.h's VcpuState holds except cpuid (the machine keeps what it set).
  Status CaptureState(std::span<const uint32_t> msr_indices, VcpuState& out) const;
  // Sets a captured state back in the order KVM needs (CPUID, sregs, regs, xsave, xcrs, MSRs,
  // LAPIC, debug registers, events, MP state). `tsc_control`: KVM_CAP_TSC_CONTROL is available.
  Status ApplyState(const VcpuState& state, bool tsc_control) const;

 private:
  void Release();

  Fd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  uint32_t id_ = 0;
};

class Kvm {
 public:
  // Opens /dev/kvm (or `path`), checks KVM_GET_API_VERSION == 12 and every capability the machine
  // depends on, naming the first one missing.
  static Result<Kvm> Open(const std::string& path = "/dev/kvm");

  int fd() const { return fd_.get(); }
  // KVM_CHECK_EXTENSION's answer (0 = not supported).
  int CheckExtension(int capability) const;
  bool tsc_control() const { return tsc_control_; }

  Result<std::vector<kvm_cpuid_entry2>> SupportedCpuid() const;
  Result<std::vector<uint32_t>> MsrIndexList() const;
  Result<VmFd> CreateVm() const;

 private:
  Kvm(Fd fd, size_t vcpu_mmap_size, bool tsc_control)
      : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size), tsc_control_(tsc_control) {}

  Fd fd_;
  size_t vcpu_mmap_size_ = 0;
  bool tsc_control_ = false;
};

}  // namespace phoenix::vmm
