#include "agent/vmm/machine/micro_vm.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "agent/vmm/kvm/cpuid.h"
#include "agent/vmm/snapshot/snapshot_file.h"
#include "agent/vmm/thread_hook.h"

namespace phoenix::vmm {
namespace {

// Sent with pthread_kill to take a vCPU thread out of KVM_RUN; the handler does nothing, the
// interrupted ioctl returning EINTR is the point.
constexpr int kKickSignal = SIGUSR1;
constexpr auto kPauseTimeout = std::chrono::seconds(5);

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kKickSignal, &sa, nullptr);
  });
}

void SetImmediateExit(kvm_run* run, bool on) {
  std::atomic_ref<uint8_t>(run->immediate_exit).store(on ? 1 : 0, std::memory_order_release);
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Boot MSRs (as a BIOS leaves them; the kernel reprograms what it uses).
constexpr uint32_t kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175, kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084, kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrTsc = 0x10, kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;

// LAPIC register offsets and delivery modes.
constexpr size_t kApicLvtLint0 = 0x350, kApicLvtLint1 = 0x360;
constexpr uint32_t kApicDeliveryExtInt = 7u << 8, kApicDeliveryNmi = 4u << 8;

// XCR0 a guest that enables every user state component its CPUID offers ends up with (leaf 0xD
// sub-leaf 0 EAX/EDX), or 0 when the vCPU has no XSAVE.
uint64_t OfferedXcr0(const std::vector<kvm_cpuid_entry2>& cpuid) {
  constexpr uint32_t kLeaf1EcxXsave = 1u << 26;
  bool xsave = false;
  uint64_t xcr0 = 0;
  for (const auto& e : cpuid) {
    if (e.function == 1) xsave = (e.ecx & kLeaf1EcxXsave) != 0;
    if (e.function == 0xd && e.index == 0) xcr0 = e.eax | (uint64_t{e.edx} << 32);
  }
  return xsave ? xcr0 : 0;
}

uint32_t LapicReg(const kvm_lapic_state& s, size_t offset) {
  uint32_t v;
  std::memcpy(&v, s.regs + offset, sizeof v);
  return v;
}
void SetLapicReg(kvm_lapic_state& s, size_t offset, uint32_t v) {
  std::memcpy(s.regs + offset, &v, sizeof v);
}

}  // namespace

class MicroVm::Line final : public InterruptLine {
 public:
  Line(MicroVm* vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void Set(bool level) override {
    if (auto r = vm_->vm_.SetIrqLine(gsi_, level); !r)
      vm_->Finish(StopReason::kFailed, Context("GSI " + std::to_string(gsi_), r.error()));
  }

 private:
  MicroVm* vm_;
  uint32_t gsi_;
};

MicroVm::MicroVm(const MachineShape& shape, GuestMemory memory, Kvm kvm, VmFd vm,
                 Clock::time_point setup_start)
    : memory_(std::move(memory)),
      kvm_(std::move(kvm)),
      vm_(std::move(vm)),
      shape_(shape),
      setup_start_(setup_start) {}

Result<std::unique_ptr<MicroVm>> MicroVm::Create(const MachineShape& shape, GuestMemory memory,
                                                 bool probe_msrs, Clock::time_point setup_start) {
  if (shape.vcpus == 0 || shape.vcpus > 255)
    return Fail("vcpus must be 1..255, not " + std::to_string(shape.vcpus));
  if (shape.memory_bytes != memory.size())
    return Fail("machine shape says " + std::to_string(shape.memory_bytes) +
                " bytes of memory, the guest memory has " + std::to_string(memory.size()));
  auto kvm = Kvm::Open();
  if (!kvm) return std::unexpected(kvm.error());
  auto vm = kvm->CreateVm();
  if (!vm) return std::unexpected(vm.error());
  if (auto r = vm->SetIdentityMapAddress(kIdentityMapAddress); !r)
    return std::unexpected(r.error());
  if (auto r = vm->SetTssAddress(kTssAddress); !r) return std::unexpected(r.error());
  if (auto r = vm->CreateIrqchip(); !r) return std::unexpected(r.error());
  if (auto r = vm->CreatePit2(); !r) return std::unexpected(r.error());
  if (auto r = vm->SetUserMemoryRegion(0, 0, memory.size(), memory.host_base()); !r)
    return std::unexpected(r.error());
  auto supported = kvm->SupportedCpuid();
  if (!supported) return std::unexpected(supported.error());

  std::unique_ptr<MicroVm> machine(
      new MicroVm(shape, std::move(memory), std::move(*kvm), std::move(*vm), setup_start));
  for (uint32_t id = 0; id < shape.vcpus; ++id) {
    auto vcpu = machine->vm_.CreateVcpu(id);
    if (!vcpu) return std::unexpected(Context("vCPU " + std::to_string(id), vcpu.error()));
    auto cpuid = VcpuCpuid(*supported, id, shape.vcpus);
    if (auto r = vcpu->SetCpuid(cpuid); !r)
      return std::unexpected(Context("vCPU " + std::to_string(id), r.error()));
    machine->vcpus_.push_back(std::move(*vcpu));
    machine->cpuid_.push_back(std::move(cpuid));
  }
  if (probe_msrs) {
    auto list = machine->kvm_.MsrIndexList();
    if (!list) return std::unexpected(list.error());
    machine->msr_indices_ = machine->vcpus_[0].ProbeSaveableMsrs(*list);
  }
  InstallKickHandler();
  return machine;
}

MicroVm::~MicroVm() {
  RequestStop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  // Devices may hold interrupt lines into this VM and pointers into guest memory: drop them while
  // both still exist.
  io_bus_ = Bus();
  mmio_bus_ = Bus();
  snapshot_devices_.clear();
  background_.clear();
}

std::shared_ptr<InterruptLine> MicroVm::Interrupt(uint32_t gsi) {
  return std::make_shared<Line>(this, gsi);
}

Status MicroVm::AddSnapshotDevice(std::shared_ptr<SnapshotState> device) {
  for (const auto& d : snapshot_devices_)
    if (d->SnapshotName() == device->SnapshotName())
      return Fail("two devices named " + std::string(device->SnapshotName()) + " in one machine");
  snapshot_devices_.push_back(std::move(device));
  return {};
}

void MicroVm::AddBackgroundWork(std::shared_ptr<BackgroundWork> work) {
  background_.push_back(std::move(work));
}

Status MicroVm::SetBootState() {
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    const VcpuFd& vcpu = vcpus_[i];
    auto ctx = [&](const Error& e) {
      return std::unexpected(Context("boot state of vCPU " + std::to_string(vcpu.id()), e));
    };
    std::vector<kvm_msr_entry> msrs;
    for (auto [index, value] : std::initializer_list<std::pair<uint32_t, uint64_t>>{
             {kMsrSysenterCs, 0},
             {kMsrSysenterEsp, 0},
             {kMsrSysenterEip, 0},
             {kMsrStar, 0},
             {kMsrCstar, 0},
             {kMsrKernelGsBase, 0},
             {kMsrSyscallMask, 0},
             {kMsrLstar, 0},
             {kMsrTsc, 0},
             {kMsrMiscEnable, kMiscEnableFastString},
             {kMsrMtrrDefType, kMtrrEnableWriteBack}}) {
      kvm_msr_entry e{};
      e.index = index;
      e.data = value;
      msrs.push_back(e);
    }
    if (auto r = vcpu.SetMsrs(msrs); !r) return ctx(r.error());
    kvm_fpu fpu{};
    fpu.fcw = 0x37f;     // x87 default control word
    fpu.mxcsr = 0x1f80;  // SSE exceptions masked
    if (auto r = vcpu.SetFpu(fpu); !r) return ctx(r.error());
    // XCR0 starts with every user state component the CPUID offers (Linux enables exactly those).
    // KVM recomputes CPUID 0xD's XSAVE-area size from its own copy of XCR0, which it learns from
    // an intercepted XSETBV; a nested hypervisor that lets XSETBV through (QEMU TCG's SVM, our KVM
    // test host) leaves that size at 576 bytes, Linux then finds it inconsistent, warns and runs
    // without XSAVE, and KVM reloads the stale XCR0 on every entry. Starting from the final value
    // keeps size and XCR0 consistent there and changes nothing where XSETBV is intercepted.
    if (const uint64_t xcr0 = OfferedXcr0(cpuid_[i]); xcr0 != 0) {
      kvm_xcrs xcrs{};
      xcrs.nr_xcrs = 1;
      xcrs.xcrs[0].xcr = 0;
      xcrs.xcrs[0].value = xcr0;
      if (auto r = vcpu.SetXcrs(xcrs); !r) return ctx(r.error());
    }
    auto lapic = vcpu.GetLapic();
    if (!lapic) return ctx(lapic.error());
    // The legacy PIC reaches the CPU through LINT0 in ExtINT mode; LINT1 carries NMIs.
    SetLapicReg(*lapic, kApicLvtLint0,
                (LapicReg(*lapic, kApicLvtLint0) & ~0x700u & ~(1u << 16)) | kApicDeliveryExtInt);
    SetLapicReg(*lapic, kApicLvtLint1,
                (LapicReg(*lapic, kApicLvtLint1) & ~0x700u & ~(1u << 16)) | kApicDeliveryNmi);
    if (auto r = vcpu.SetLapic(*lapic); !r) return ctx(r.error());
  }
  return {};
}

Status MicroVm::CaptureState(MachineState& out) const {
  {
    std::lock_guard lock(mu_);
    if (started_ && !paused_ && exited_ < vcpus_.size())
      return Fail("capture state: the machine is running; pause it first");
  }
  out.shape = shape_;
  out.vcpus.clear();
  out.vcpus.resize(vcpus_.size());
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    if (auto r = vcpus_[i].CaptureState(msr_indices_, out.vcpus[i]); !r)
      return std::unexpected(r.error());
    out.vcpus[i].cpuid = cpuid_[i];
  }
  const uint32_t chips[] = {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC};
  for (size_t i = 0; i < 3; ++i) {
    auto chip = vm_.GetIrqchip(chips[i]);
    if (!chip) return std::unexpected(chip.error());
    out.irqchips[i] = *chip;
  }
  auto pit = vm_.GetPit2();
  if (!pit) return std::unexpected(pit.error());
  out.pit = *pit;
  auto clock = vm_.GetClock();
  if (!clock) return std::unexpected(clock.error());
  out.clock = *clock;
  out.devices.clear();
  for (const auto& d : snapshot_devices_)
    out.devices.push_back(DeviceStateBlob{std::string(d->SnapshotName()), d->SaveState()});
  return {};
}

Status MicroVm::ApplyState(const MachineState& state) {
  if (started_) return Fail("apply state: the machine already runs");
  if (state.shape.vcpus != shape_.vcpus || state.shape.memory_bytes != shape_.memory_bytes ||
      state.shape.has_net != shape_.has_net || state.vcpus.size() != vcpus_.size())
    return Fail("apply state: the snapshot's machine (" + std::to_string(state.shape.vcpus) +
                " vCPUs, " + std::to_string(state.shape.memory_bytes) +
                " bytes) differs from this one (" + std::to_string(shape_.vcpus) + " vCPUs, " +
                std::to_string(shape_.memory_bytes) + " bytes)");
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    if (auto r = vcpus_[i].ApplyState(state.vcpus[i], kvm_.tsc_control()); !r)
      return std::unexpected(r.error());
    cpuid_[i] = state.vcpus[i].cpuid;
  }
  msr_indices_.clear();
  for (const auto& m : state.vcpus[0].msrs) msr_indices_.push_back(m.index);
  const uint32_t chips[] = {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC};
  for (size_t i = 0; i < 3; ++i) {
    if (state.irqchips[i].chip_id != chips[i])
      return Fail("apply state: irqchip " + std::to_string(i) + " has id " +
                  std::to_string(state.irqchips[i].chip_id));
    if (auto r = vm_.SetIrqchip(state.irqchips[i]); !r) return std::unexpected(r.error());
  }
  if (auto r = vm_.SetPit2(state.pit); !r) return std::unexpected(r.error());
  if (auto r = vm_.SetClock(state.clock); !r) return std::unexpected(r.error());

  std::set<std::string> known;
  for (const auto& d : snapshot_devices_) known.insert(std::string(d->SnapshotName()));
  for (const auto& blob : state.devices)
    if (!known.contains(blob.name))
      return Fail("apply state: the snapshot has device " + blob.name + ", this machine does not");
  for (const auto& d : snapshot_devices_) {
    auto it = std::find_if(state.devices.begin(), state.devices.end(),
                           [&](const DeviceStateBlob& b) { return b.name == d->SnapshotName(); });
    if (it == state.devices.end())
      return Fail("apply state: the snapshot has no state for device " +
                  std::string(d->SnapshotName()));
    if (auto r = d->LoadState(it->state); !r)
      return std::unexpected(Context("device " + it->name, r.error()));
  }
  return {};
}

Status MicroVm::Start(std::function<void(StopReason)> on_stop) {
  std::lock_guard lock(mu_);
  if (started_) return Fail("machine already started");
  started_ = true;
  on_stop_ = std::move(on_stop);
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    try {
      threads_.emplace_back([this, i] { VcpuLoop(i); });
    } catch (const std::system_error& e) {
      stop_requested_ = true;
      KickAll();
      return ErrnoValue("start vCPU thread", e.code().value());
    }
  }
  return {};
}

void MicroVm::KickAll() {
  for (auto& vcpu : vcpus_) SetImmediateExit(vcpu.run(), true);
  for (auto& t : threads_) pthread_kill(t.native_handle(), kKickSignal);
}

Status MicroVm::Pause() {
  std::unique_lock lock(mu_);
  if (paused_) return {};
  pause_requested_ = true;
  if (!started_) {
    paused_ = true;
    return {};
  }
  KickAll();
  const size_t n = vcpus_.size();
  // Signals can be lost between the check and the ioctl only if immediate_exit were not set, which
  // KickAll does; still re-kick on each wait round, bounded by the timeout.
  auto deadline = Clock::now() + kPauseTimeout;
  while (parked_ + exited_ < n) {
    if (cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)),
                       [&] { return parked_ + exited_ >= n; }))
      break;
    if (Clock::now() >= deadline) {
      pause_requested_ = false;
      cv_.notify_all();
      return Fail("pause: vCPUs did not stop within 5 s");
    }
    KickAll();
  }
  paused_ = true;
  lock.unlock();
  for (auto& w : background_) w->Quiesce();
  return {};
}

Status MicroVm::Resume() {
  {
    std::lock_guard lock(mu_);
    if (!paused_) return {};
  }
  for (auto& w : background_) w->Resume();
  std::lock_guard lock(mu_);
  paused_ = false;
  pause_requested_ = false;
  cv_.notify_all();
  return {};
}

Status MicroVm::Snapshot(const std::string& dir) {
  {
    std::lock_guard lock(mu_);
    if (started_ && !paused_) return Fail("snapshot: pause the machine first");
  }
  MachineState state;
  if (auto r = CaptureState(state); !r) return std::unexpected(Context("snapshot", r.error()));
  if (auto r = WriteSnapshot(dir, state, memory_); !r)
    return std::unexpected(Context("snapshot " + dir, r.error()));
  return {};
}

void MicroVm::RequestStop() {
  std::lock_guard lock(mu_);
  stop_requested_ = true;
  if (started_) KickAll();
  cv_.notify_all();
}

StopReason MicroVm::stop_reason() const {
  std::lock_guard lock(mu_);
  return stop_reason_;
}

Error MicroVm::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

MachineStats MicroVm::Stats() const {
  MachineStats s;
  s.vcpus = static_cast<uint32_t>(vcpus_.size());
  s.memory_bytes = memory_.size();
  if (auto r = memory_.ResidentBytes()) s.guest_resident_bytes = *r;
  s.exits = exits_.load(std::memory_order_relaxed);
  s.io_exits = io_exits_.load(std::memory_order_relaxed);
  s.mmio_exits = mmio_exits_.load(std::memory_order_relaxed);
  s.unhandled_io = unhandled_io_.load(std::memory_order_relaxed);
  s.unhandled_mmio = unhandled_mmio_.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    s.paused = paused_;
  }
  s.setup_to_first_run = std::chrono::microseconds(setup_to_first_run_us_.load());
  s.restored = restored_;
  return s;
}

bool MicroVm::Finish(StopReason reason, Error error) {
  std::function<void(StopReason)> callback;
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
    KickAll();
    cv_.notify_all();
    if (stop_reason_ != StopReason::kRunning) return false;
    stop_reason_ = reason;
    failure_ = std::move(error);
    callback = on_stop_;
  }
  if (callback) callback(reason);
  return true;
}

void MicroVm::VcpuLoop(size_t index) {
  RunThreadStartHook(ThreadKind::kVcpu);
  const VcpuFd& vcpu = vcpus_[index];
  kvm_run* run = vcpu.run();
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);

  bool needs_completion = false;
  StopReason end = StopReason::kRequested;
  Error error;
  while (true) {
    {
      std::unique_lock lock(mu_);
      // A vCPU parks only between instructions: after an I/O or MMIO exit KVM_RUN must run once
      // more (immediate_exit makes it return right after completing the access).
      if (!needs_completion) {
        if (pause_requested_ && !stop_requested_) {
          ++parked_;
          cv_.notify_all();
          cv_.wait(lock, [&] { return !pause_requested_ || stop_requested_; });
          --parked_;
        }
        if (stop_requested_) break;
      }
      SetImmediateExit(run, pause_requested_ || stop_requested_);
    }
    std::call_once(first_run_once_, [&] {
      setup_to_first_run_us_ =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - setup_start_)
              .count();
    });
    auto r = vcpu.Run();
    needs_completion = false;
    exits_.fetch_add(1, std::memory_order_relaxed);
    if (!r) {
      if (r.error().sys_errno == EINTR || r.error().sys_errno == EAGAIN) continue;
      end = StopReason::kFailed;
      error = Context("vCPU " + std::to_string(vcpu.id()), r.error());
      break;
    }
    StopReason outcome = HandleExit(vcpu, needs_completion, error);
    if (outcome != StopReason::kRunning) {
      end = outcome;
      break;
    }
  }
  Finish(end, std::move(error));
  std::lock_guard lock(mu_);
  ++exited_;
  cv_.notify_all();
}

StopReason MicroVm::HandleExit(const VcpuFd& vcpu, bool& needs_completion, Error& error) {
  kvm_run* run = vcpu.run();
  const std::string who = "vCPU " + std::to_string(vcpu.id()) + ": ";
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      io_exits_.fetch_add(1, std::memory_order_relaxed);
      HandleIo(run);
      needs_completion = true;
      return StopReason::kRunning;
    case KVM_EXIT_MMIO:
      mmio_exits_.fetch_add(1, std::memory_order_relaxed);
      HandleMmio(run);
      needs_completion = true;
      return StopReason::kRunning;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return StopReason::kRunning;
    case KVM_EXIT_HLT:
      // Only without an in-kernel LAPIC would HLT come here; with it the kernel sleeps the vCPU.
      return StopReason::kShutdown;
    case KVM_EXIT_SHUTDOWN:  // triple fault: what a PC does on reset
      return StopReason::kReset;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          return StopReason::kShutdown;
        case KVM_SYSTEM_EVENT_RESET:
          return StopReason::kReset;
        default:
          error = Error{0, who + "guest system event " + std::to_string(run->system_event.type)};
          return StopReason::kFailed;
      }
    case KVM_EXIT_FAIL_ENTRY:
      error = Error{0, who + "KVM_EXIT_FAIL_ENTRY hardware_entry_failure_reason=" +
                           Hex(run->fail_entry.hardware_entry_failure_reason)};
      return StopReason::kFailed;
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string m =
          who + "KVM_EXIT_INTERNAL_ERROR suberror=" + std::to_string(run->internal.suberror);
      for (uint32_t i = 0; i < run->internal.ndata && i < 16; ++i)
        m += " " + Hex(run->internal.data[i]);
      error = Error{0, m};
      return StopReason::kFailed;
    }
    default:
      error = Error{0, who + "unexpected KVM exit reason " + std::to_string(run->exit_reason)};
      return StopReason::kFailed;
  }
}

void MicroVm::HandleIo(kvm_run* run) {
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  const size_t size = run->io.size;
  // String I/O (rep ins/outs) arrives as `count` consecutive elements.
  for (uint32_t i = 0; i < run->io.count; ++i) {
    std::span<uint8_t> element(data + i * size, size);
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      if (!io_bus_.Write(run->io.port, element))
        unhandled_io_.fetch_add(1, std::memory_order_relaxed);
    } else if (!io_bus_.Read(run->io.port, element)) {
      std::fill(element.begin(), element.end(), 0xff);
      unhandled_io_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void MicroVm::HandleMmio(kvm_run* run) {
  const size_t len = std::min<size_t>(run->mmio.len, sizeof run->mmio.data);
  std::span<uint8_t> data(run->mmio.data, len);
  if (run->mmio.is_write) {
    if (!mmio_bus_.Write(run->mmio.phys_addr, data))
      unhandled_mmio_.fetch_add(1, std::memory_order_relaxed);
  } else if (!mmio_bus_.Read(run->mmio.phys_addr, data)) {
    std::fill(data.begin(), data.end(), 0xff);
    unhandled_mmio_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace phoenix::vmm
