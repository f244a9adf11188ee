// Proves the `kvm` test pipeline end to end: wherever tools/test runs the kvm-labelled tests
// (directly on a host with /dev/kvm, or inside tools/kvm-test-host under QEMU TCG), a VM with one
// vCPU runs a three-instruction real-mode guest through raw KVM ioctls to an I/O exit, then HLT.
// Deliberately independent of agent/vmm so that a broken monitor cannot hide a broken test host.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr uint64_t kGuestMemorySize = 0x10000;  // 64 KiB at guest physical 0
constexpr uint64_t kCodeAddress = 0x1000;
constexpr uint16_t kPort = 0x10;
constexpr uint8_t kValue = 0x42;
// mov al, 0x42 ; out 0x10, al ; hlt
constexpr uint8_t kGuestCode[] = {0xb0, kValue, 0xe6, kPort, 0xf4};

std::string ErrnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

class Mapping {
 public:
  Mapping(void* address, size_t size) : address_(address), size_(size) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address_ != MAP_FAILED) munmap(address_, size_);
  }
  bool ok() const { return address_ != MAP_FAILED; }
  void* get() const { return address_; }

 private:
  void* address_;
  size_t size_;
};

// KVM_RUN returns EINTR when a signal arrives; retry a bounded number of times.
int RunVcpu(int vcpu) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int rc = ioctl(vcpu, KVM_RUN, 0);
    if (rc == 0 || errno != EINTR) return rc;
  }
  return -1;
}

TEST(KvmHostSmokeTest, RealModeGuestExitsOnIoThenHalts) {
  Fd kvm(open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (kvm.get() < 0 && errno == ENOENT && std::getenv("PHOENIX_KVM_TEST_HOST") == nullptr) {
    GTEST_SKIP()
        << "no /dev/kvm on this machine (tools/test runs kvm tests in tools/kvm-test-host)";
  }
  ASSERT_GE(kvm.get(), 0) << ErrnoText("open /dev/kvm");
  ASSERT_EQ(ioctl(kvm.get(), KVM_GET_API_VERSION, 0), KVM_API_VERSION);
  ASSERT_GT(ioctl(kvm.get(), KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), 0);

  Fd vm(ioctl(kvm.get(), KVM_CREATE_VM, 0));
  ASSERT_GE(vm.get(), 0) << ErrnoText("KVM_CREATE_VM");

  Mapping memory(mmap(nullptr, kGuestMemorySize, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
                 kGuestMemorySize);
  ASSERT_TRUE(memory.ok()) << ErrnoText("mmap guest memory");
  std::memcpy(static_cast<uint8_t*>(memory.get()) + kCodeAddress, kGuestCode, sizeof(kGuestCode));
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = kGuestMemorySize;
  region.userspace_addr = reinterpret_cast<uintptr_t>(memory.get());
  ASSERT_EQ(ioctl(vm.get(), KVM_SET_USER_MEMORY_REGION, &region), 0)
      << ErrnoText("KVM_SET_USER_MEMORY_REGION");

  Fd vcpu(ioctl(vm.get(), KVM_CREATE_VCPU, 0));
  ASSERT_GE(vcpu.get(), 0) << ErrnoText("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  ASSERT_GE(run_size, static_cast<int>(sizeof(kvm_run))) << ErrnoText("KVM_GET_VCPU_MMAP_SIZE");
  Mapping run_mapping(mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.get(), 0),
                      run_size);
  ASSERT_TRUE(run_mapping.ok()) << ErrnoText("mmap kvm_run");
  auto* run = static_cast<kvm_run*>(run_mapping.get());

  // Reset state is real mode with CS based at 0xffff0000; point CS:IP at the code instead.
  kvm_sregs sregs{};
  ASSERT_EQ(ioctl(vcpu.get(), KVM_GET_SREGS, &sregs), 0) << ErrnoText("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  ASSERT_EQ(ioctl(vcpu.get(), KVM_SET_SREGS, &sregs), 0) << ErrnoText("KVM_SET_SREGS");
  kvm_regs regs{};
  regs.rip = kCodeAddress;
  regs.rflags = 0x2;  // bit 1 is reserved and must be set
  ASSERT_EQ(ioctl(vcpu.get(), KVM_SET_REGS, &regs), 0) << ErrnoText("KVM_SET_REGS");

  ASSERT_EQ(RunVcpu(vcpu.get()), 0) << ErrnoText("KVM_RUN");
  ASSERT_EQ(run->exit_reason, static_cast<uint32_t>(KVM_EXIT_IO))
      << "expected KVM_EXIT_IO, got exit reason " << run->exit_reason;
  EXPECT_EQ(run->io.direction, KVM_EXIT_IO_OUT);
  EXPECT_EQ(run->io.port, kPort);
  EXPECT_EQ(run->io.size, 1);
  EXPECT_EQ(run->io.count, 1u);
  ASSERT_LT(run->io.data_offset, static_cast<uint64_t>(run_size));
  EXPECT_EQ(*(reinterpret_cast<const uint8_t*>(run) + run->io.data_offset), kValue);

  ASSERT_EQ(RunVcpu(vcpu.get()), 0) << ErrnoText("KVM_RUN after the I/O exit");
  ASSERT_EQ(run->exit_reason, static_cast<uint32_t>(KVM_EXIT_HLT))
      << "expected KVM_EXIT_HLT, got exit reason " << run->exit_reason;
  ASSERT_EQ(ioctl(vcpu.get(), KVM_GET_REGS, &regs), 0) << ErrnoText("KVM_GET_REGS");
  EXPECT_EQ(regs.rip, kCodeAddress + sizeof(kGuestCode)) << "HLT leaves RIP after itself";
}

}  // namespace
