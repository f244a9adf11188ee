#include "agent/vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <utility>

namespace phoenix::vmm {
namespace {

constexpr int kKvmApiVersion = 12;

// Debian 12's UAPI headers declare the variable-length arrays of kvm_cpuid2, kvm_msrs,
// kvm_msr_list and kvm_xsave with __DECLARE_FLEX_ARRAY, an anonymous struct holding an empty
// struct; in C++ an empty struct has size 1, which moves the arrays (entries at offset 12 or 16
// instead of 8) and changes sizeof, so the ioctl numbers built from these types are ones the
// kernel does not know (EINVAL). The monitor therefore uses the C layout's headers and ioctl
// numbers, spelled out here.
struct CpuidHeader {  // struct kvm_cpuid2 as C lays it out: entries at offset 8
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs: entries at offset 8
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {  // struct kvm_msr_list: indices at offset 4
  uint32_t nmsrs;
};
struct XsaveC {  // struct kvm_xsave without the dynamic tail: 4 KiB
  uint32_t region[1024];
};
static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8 && sizeof(MsrListHeader) == 4);
static_assert(sizeof(XsaveC) == 4096 && sizeof(kvm_xsave) >= sizeof(XsaveC));
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveC);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveC);

// Builds the variable-length structs KVM uses (kvm_msrs, kvm_cpuid2, kvm_msr_list): a header
// followed by `count` entries, in one suitably aligned buffer.
template <typename Header, typename Entry>
class Flex {
 public:
  explicit Flex(size_t count)
      : storage_((sizeof(Header) + count * sizeof(Entry) + sizeof(uint64_t) - 1) / sizeof(uint64_t),
                 0) {}
  Header* header() { return reinterpret_cast<Header*>(storage_.data()); }
  void* arg() { return storage_.data(); }
  Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.data()) + sizeof(Header));
  }

 private:
  std::vector<uint64_t> storage_;
};

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

template <typename T>
Result<T> IoctlGet(int fd, unsigned long request, const char* what) {
  T value{};
  if (ioctl(fd, request, &value) < 0) return Errno(what);
  return value;
}

template <typename T>
Status IoctlSet(int fd, unsigned long request, const T& value, const char* what) {
  if (ioctl(fd, request, &value) < 0) return Errno(what);
  return {};
}

}  // namespace

Fd::Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) close(fd_);
}

// ---- Kvm -------------------------------------------------------------------------------------

Result<Kvm> Kvm::Open(const std::string& path) {
  int raw = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (raw < 0) return Errno("open " + path);
  Fd fd(raw);
  int version = ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version < 0) return Errno("KVM_GET_API_VERSION");
  if (version != kKvmApiVersion)
    return Fail(path + ": KVM API version " + std::to_string(version) + ", need " +
                std::to_string(kKvmApiVersion));
  struct Required {
    int cap;
    const char* name;
  };
  static constexpr Required kRequired[] = {
      {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
      {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
      {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
      {KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2"},
      {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
      {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
      {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
      {KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
      {KVM_CAP_XCRS, "KVM_CAP_XCRS"},
      {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
      {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
      {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
      {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
      {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
  };
  for (const auto& r : kRequired) {
    int have = ioctl(fd.get(), KVM_CHECK_EXTENSION, r.cap);
    if (have < 0) return Errno(std::string("KVM_CHECK_EXTENSION ") + r.name);
    if (have == 0) return Fail(path + " lacks " + r.name + ", which phoenix-vmm needs");
  }
  int mmap_size = ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size < 0) return Errno("KVM_GET_VCPU_MMAP_SIZE");
  if (static_cast<size_t>(mmap_size) < sizeof(kvm_run))
    return Fail("KVM_GET_VCPU_MMAP_SIZE " + std::to_string(mmap_size) + " is smaller than kvm_run");
  int tsc_control = ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL);
  if (tsc_control < 0) return Errno("KVM_CHECK_EXTENSION KVM_CAP_TSC_CONTROL");
  return Kvm(std::move(fd), static_cast<size_t>(mmap_size), tsc_control > 0);
}

int Kvm::CheckExtension(int capability) const {
  int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return r < 0 ? 0 : r;
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::SupportedCpuid() const {
  // The kernel answers E2BIG until the buffer is large enough; 256 entries suffice on every CPU
  // seen so far, the loop bounds the growth.
  for (size_t count = 256; count <= 4096; count *= 2) {
    Flex<CpuidHeader, kvm_cpuid_entry2> buf(count);
    buf.header()->nent = static_cast<uint32_t>(count);
    if (ioctl(fd_.get(), kGetSupportedCpuid, buf.arg()) == 0)
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.header()->nent);
    if (errno != E2BIG) return Errno("KVM_GET_SUPPORTED_CPUID");
  }
  return Fail("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<std::vector<uint32_t>> Kvm::MsrIndexList() const {
  MsrListHeader probe{};
  probe.nmsrs = 0;
  if (ioctl(fd_.get(), kGetMsrIndexList, &probe) < 0 && errno != E2BIG)
    return Errno("KVM_GET_MSR_INDEX_LIST");
  uint32_t count = probe.nmsrs;
  Flex<MsrListHeader, uint32_t> buf(count);
  buf.header()->nmsrs = count;
  if (ioctl(fd_.get(), kGetMsrIndexList, buf.arg()) < 0) return Errno("KVM_GET_MSR_INDEX_LIST");
  return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.header()->nmsrs);
}

Result<VmFd> Kvm::CreateVm() const {
  int vm = ioctl(fd_.get(), KVM_CREATE_VM, 0);
  if (vm < 0) return Errno("KVM_CREATE_VM");
  return VmFd(Fd(vm), vcpu_mmap_size_);
}

// ---- VmFd ------------------------------------------------------------------------------------

Status VmFd::SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size,
                                 void* host) const {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.guest_phys_addr = guest_phys;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  return IoctlSet(fd(), KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION");
}

Status VmFd::SetTssAddress(uint64_t address) const {
  if (ioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address)) < 0)
    return Errno("KVM_SET_TSS_ADDR");
  return {};
}

Status VmFd::SetIdentityMapAddress(uint64_t address) const {
  uint64_t a = address;
  return IoctlSet(fd(), KVM_SET_IDENTITY_MAP_ADDR, a, "KVM_SET_IDENTITY_MAP_ADDR");
}

Status VmFd::CreateIrqchip() const {
  if (ioctl(fd(), KVM_CREATE_IRQCHIP, 0) < 0) return Errno("KVM_CREATE_IRQCHIP");
  return {};
}

Status VmFd::CreatePit2() const {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  return IoctlSet(fd(), KVM_CREATE_PIT2, config, "KVM_CREATE_PIT2");
}

Status VmFd::SetIrqLine(uint32_t gsi, bool level) const {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  return IoctlSet(fd(), KVM_IRQ_LINE, irq, "KVM_IRQ_LINE");
}

Result<kvm_irqchip> VmFd::GetIrqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (ioctl(fd(), KVM_GET_IRQCHIP, &chip) < 0) return Errno("KVM_GET_IRQCHIP");
  return chip;
}

Status VmFd::SetIrqchip(const kvm_irqchip& chip) const {
  return IoctlSet(fd(), KVM_SET_IRQCHIP, chip, "KVM_SET_IRQCHIP");
}

Result<kvm_pit_state2> VmFd::GetPit2() const {
  return IoctlGet<kvm_pit_state2>(fd(), KVM_GET_PIT2, "KVM_GET_PIT2");
}

Status VmFd::SetPit2(const kvm_pit_state2& pit) const {
  return IoctlSet(fd(), KVM_SET_PIT2, pit, "KVM_SET_PIT2");
}

Result<kvm_clock_data> VmFd::GetClock() const {
  return IoctlGet<kvm_clock_data>(fd(), KVM_GET_CLOCK, "KVM_GET_CLOCK");
}

Status VmFd::SetClock(const kvm_clock_data& clock) const {
  // Only the clock value is set: the flags KVM_GET_CLOCK reports (TSC_STABLE, REALTIME, HOST_TSC)
  // describe the host the snapshot came from and would make KVM_SET_CLOCK reinterpret the value.
  kvm_clock_data data{};
  data.clock = clock.clock;
  return IoctlSet(fd(), KVM_SET_CLOCK, data, "KVM_SET_CLOCK");
}

Result<VcpuFd> VmFd::CreateVcpu(uint32_t id) const {
  int raw = ioctl(fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (raw < 0) return Errno("KVM_CREATE_VCPU");
  Fd vcpu(raw);
  void* run = mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.get(), 0);
  if (run == MAP_FAILED) return Errno("mmap kvm_run");
  return VcpuFd(std::move(vcpu), static_cast<kvm_run*>(run), vcpu_mmap_size_, id);
}

// ---- VcpuFd ----------------------------------------------------------------------------------

VcpuFd::VcpuFd(VcpuFd&& other) noexcept
    : fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(std::exchange(other.run_size_, 0)),
      id_(other.id_) {}

VcpuFd& VcpuFd::operator=(VcpuFd&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::move(other.fd_);
    run_ = std::exchange(other.run_, nullptr);
    run_size_ = std::exchange(other.run_size_, 0);
    id_ = other.id_;
  }
  return *this;
}

VcpuFd::~VcpuFd() { Release(); }

void VcpuFd::Release() {
  if (run_ != nullptr) munmap(run_, run_size_);
  run_ = nullptr;
}

Status VcpuFd::Run() const {
  if (ioctl(fd(), KVM_RUN, 0) < 0) return Errno("KVM_RUN");
  return {};
}

Result<kvm_regs> VcpuFd::GetRegs() const {
  return IoctlGet<kvm_regs>(fd(), KVM_GET_REGS, "KVM_GET_REGS");
}
Status VcpuFd::SetRegs(const kvm_regs& v) const {
  return IoctlSet(fd(), KVM_SET_REGS, v, "KVM_SET_REGS");
}
Result<kvm_sregs> VcpuFd::GetSregs() const {
  return IoctlGet<kvm_sregs>(fd(), KVM_GET_SREGS, "KVM_GET_SREGS");
}
Status VcpuFd::SetSregs(const kvm_sregs& v) const {
  return IoctlSet(fd(), KVM_SET_SREGS, v, "KVM_SET_SREGS");
}
Status VcpuFd::SetFpu(const kvm_fpu& v) const {
  return IoctlSet(fd(), KVM_SET_FPU, v, "KVM_SET_FPU");
}
Status VcpuFd::GetXsave(kvm_xsave& out) const {
  if (ioctl(fd(), kGetXsave, &out) < 0) return Errno("KVM_GET_XSAVE");
  return {};
}
Status VcpuFd::SetXsave(const kvm_xsave& v) const {
  if (ioctl(fd(), kSetXsave, &v) < 0) return Errno("KVM_SET_XSAVE");
  return {};
}
Result<kvm_xcrs> VcpuFd::GetXcrs() const {
  return IoctlGet<kvm_xcrs>(fd(), KVM_GET_XCRS, "KVM_GET_XCRS");
}
Status VcpuFd::SetXcrs(const kvm_xcrs& v) const {
  return IoctlSet(fd(), KVM_SET_XCRS, v, "KVM_SET_XCRS");
}
Result<kvm_lapic_state> VcpuFd::GetLapic() const {
  return IoctlGet<kvm_lapic_state>(fd(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
Status VcpuFd::SetLapic(const kvm_lapic_state& v) const {
  return IoctlSet(fd(), KVM_SET_LAPIC, v, "KVM_SET_LAPIC");
}
Result<kvm_vcpu_events> VcpuFd::GetVcpuEvents() const {
  return IoctlGet<kvm_vcpu_events>(fd(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Status VcpuFd::SetVcpuEvents(const kvm_vcpu_events& v) const {
  return IoctlSet(fd(), KVM_SET_VCPU_EVENTS, v, "KVM_SET_VCPU_EVENTS");
}
Result<kvm_mp_state> VcpuFd::GetMpState() const {
  return IoctlGet<kvm_mp_state>(fd(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Status VcpuFd::SetMpState(const kvm_mp_state& v) const {
  return IoctlSet(fd(), KVM_SET_MP_STATE, v, "KVM_SET_MP_STATE");
}
Result<kvm_debugregs> VcpuFd::GetDebugRegs() const {
  return IoctlGet<kvm_debugregs>(fd(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
Status VcpuFd::SetDebugRegs(const kvm_debugregs& v) const {
  return IoctlSet(fd(), KVM_SET_DEBUGREGS, v, "KVM_SET_DEBUGREGS");
}

Result<std::vector<kvm_msr_entry>> VcpuFd::GetMsrs(std::span<const uint32_t> indices) const {
  Flex<MsrsHeader, kvm_msr_entry> buf(indices.size());
  buf.header()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buf.entries()[i].index = indices[i];
  int n = ioctl(fd(), kGetMsrs, buf.arg());
  if (n < 0) return Errno("KVM_GET_MSRS");
  if (static_cast<size_t>(n) != indices.size())
    return Fail("KVM_GET_MSRS: read " + std::to_string(n) + " of " +
                std::to_string(indices.size()) + " MSRs, stopped at " + Hex(indices[n]));
  return std::vector<kvm_msr_entry>(buf.entries(), buf.entries() + n);
}

Status VcpuFd::SetMsrs(std::span<const kvm_msr_entry> msrs) const {
  Flex<MsrsHeader, kvm_msr_entry> buf(msrs.size());
  buf.header()->nmsrs = static_cast<uint32_t>(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) buf.entries()[i] = msrs[i];
  int n = ioctl(fd(), kSetMsrs, buf.arg());
  if (n < 0) return Errno("KVM_SET_MSRS");
  if (static_cast<size_t>(n) != msrs.size())
    return Fail("KVM_SET_MSRS: set " + std::to_string(n) + " of " + std::to_string(msrs.size()) +
                " MSRs, refused " + Hex(msrs[n].index) + " = " + Hex(msrs[n].data));
  return {};
}

Status VcpuFd::SetCpuid(std::span<const kvm_cpuid_entry2> entries) const {
  Flex<CpuidHeader, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buf.entries()[i] = entries[i];
  if (ioctl(fd(), kSetCpuid2, buf.arg()) < 0) return Errno("KVM_SET_CPUID2");
  return {};
}

Result<uint64_t> VcpuFd::GetTscKhz() const {
  int khz = ioctl(fd(), KVM_GET_TSC_KHZ, 0);
  if (khz < 0) {
    if (errno == EINVAL || errno == ENOTTY) return 0;
    return Errno("KVM_GET_TSC_KHZ");
  }
  return static_cast<uint64_t>(khz);
}

Status VcpuFd::SetTscKhz(uint64_t khz) const {
  if (ioctl(fd(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) < 0)
    return Errno("KVM_SET_TSC_KHZ");
  return {};
}

std::vector<uint32_t> VcpuFd::ProbeSaveableMsrs(std::span<const uint32_t> indices) const {
  std::vector<uint32_t> saveable;
  for (uint32_t index : indices) {
    auto read = GetMsrs({&index, 1});
    if (!read) continue;            // listed but not implemented for this vCPU model
    if (!SetMsrs(*read)) continue;  // reads, but a restore could not write it back
    saveable.push_back(index);
  }
  return saveable;
}

Status VcpuFd::CaptureState(std::span<const uint32_t> msr_indices, VcpuState& s) const {
  auto fail = [this](const Error& e) {
    return std::unexpected(Context("vCPU " + std::to_string(id_), e));
  };
  // MP state first: KVM_GET_MP_STATE flushes pending LAPIC events (INIT/SIPI) into the state.
  if (auto v = GetMpState())
    s.mp_state = *v;
  else
    return fail(v.error());
  if (auto v = GetRegs())
    s.regs = *v;
  else
    return fail(v.error());
  if (auto v = GetSregs())
    s.sregs = *v;
  else
    return fail(v.error());
  if (auto r = GetXsave(s.xsave); !r) return fail(r.error());
  if (auto v = GetXcrs())
    s.xcrs = *v;
  else
    return fail(v.error());
  if (auto v = GetLapic())
    s.lapic = *v;
  else
    return fail(v.error());
  if (auto v = GetVcpuEvents())
    s.events = *v;
  else
    return fail(v.error());
  if (auto v = GetDebugRegs())
    s.debugregs = *v;
  else
    return fail(v.error());
  if (auto v = GetMsrs(msr_indices))
    s.msrs = std::move(*v);
  else
    return fail(v.error());
  if (auto v = GetTscKhz())
    s.tsc_khz = *v;
  else
    return fail(v.error());
  return {};
}

Status VcpuFd::ApplyState(const VcpuState& s, bool tsc_control) const {
  auto fail = [this](const Error& e) {
    return std::unexpected(Context("vCPU " + std::to_string(id_), e));
  };
  if (s.cpuid.empty()) return Fail("vCPU " + std::to_string(id_) + ": state has no CPUID");
  if (auto r = SetCpuid(s.cpuid); !r) return fail(r.error());
  if (s.tsc_khz != 0) {
    auto now = GetTscKhz();
    if (!now) return fail(now.error());
    if (*now != s.tsc_khz) {
      if (!tsc_control)
        return Fail("vCPU " + std::to_string(id_) + ": snapshot TSC runs at " +
                    std::to_string(s.tsc_khz) + " kHz, this host at " + std::to_string(*now) +
                    " kHz and KVM lacks KVM_CAP_TSC_CONTROL");
      if (auto r = SetTscKhz(s.tsc_khz); !r) return fail(r.error());
    }
  }
  if (auto r = SetSregs(s.sregs); !r) return fail(r.error());
  if (auto r = SetRegs(s.regs); !r) return fail(r.error());
  if (auto r = SetXsave(s.xsave); !r) return fail(r.error());
  if (auto r = SetXcrs(s.xcrs); !r) return fail(r.error());
  if (auto r = SetMsrs(s.msrs); !r) return fail(r.error());
  if (auto r = SetLapic(s.lapic); !r) return fail(r.error());
  if (auto r = SetDebugRegs(s.debugregs); !r) return fail(r.error());
  if (auto r = SetVcpuEvents(s.events); !r) return fail(r.error());
  if (auto r = SetMpState(s.mp_state); !r) return fail(r.error());
  return {};
}

}  // namespace phoenix::vmm
