// Needs /dev/kvm with hardware virtualization (label kvm; skips itself on kvm-pvm, where a stock
// kernel cannot boot, and without the demo image): boots the demo image's kernel through both
// loader paths (ELF vmlinux and bzImage) with virtio-net on a socketpair, and checks that the
// stock Debian kernel found the virtio-mmio device through the DSDT: after the ready marker the
// guest answers an ARP request for its phoenix.ip address (172.16.0.2) from its MAC, which needs
// virtio_mmio bound to the LNRO0005 device, virtio_net on it and the demo init's eth0 setup.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/vmm/arch/x86_64/synthetic_kernel_for_test.h"
#include "agent/vmm/machine.h"

namespace phoenix::vmm::x86 {
namespace {

using namespace std::chrono_literals;

bool HasHardwareVirtualization() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("flags") &&
        (line.find(" svm") != std::string::npos || line.find(" vmx") != std::string::npos))
      return true;
  return false;
}

class ConsoleText {
 public:
  ConsoleSink Sink() {
    return [this](std::span<const uint8_t> bytes) {
      std::lock_guard lock(mu_);
      text_.append(bytes.begin(), bytes.end());
    };
  }
  bool WaitFor(const std::string& marker, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Text().find(marker) != std::string::npos) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  std::string Text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

constexpr uint8_t kHostMac[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x01};
constexpr uint8_t kHostIp[4] = {172, 16, 0, 1};
constexpr uint8_t kGuestIp[4] = {172, 16, 0, 2};

std::vector<uint8_t> ArpRequestForGuest() {
  std::vector<uint8_t> f;
  f.insert(f.end(), 6, 0xff);                                     // broadcast
  f.insert(f.end(), kHostMac, kHostMac + 6);                      // source
  f.insert(f.end(), {0x08, 0x06});                                // ARP
  f.insert(f.end(), {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01});  // Ethernet/IPv4, request
  f.insert(f.end(), kHostMac, kHostMac + 6);
  f.insert(f.end(), kHostIp, kHostIp + 4);
  f.insert(f.end(), 6, 0x00);
  f.insert(f.end(), kGuestIp, kGuestIp + 4);
  return f;
}

// Sends ARP requests (once a second) and waits up to `timeout` for the guest's reply; returns
// the MAC that answered for 172.16.0.2, or "" (frames of other kinds, e.g. IPv6, are skipped).
std::vector<uint8_t> ArpGuest(int fd, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto next_request = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::chrono::steady_clock::now() >= next_request) {
      const std::vector<uint8_t> request = ArpRequestForGuest();
      if (::send(fd, request.data(), request.size(), MSG_DONTWAIT) < 0) return {};
      next_request += 1s;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    uint8_t frame[2048];
    const ssize_t n = ::recv(fd, frame, sizeof frame, MSG_DONTWAIT);
    if (n < 42) continue;
    const bool arp_reply = frame[12] == 0x08 && frame[13] == 0x06 && frame[20] == 0 &&
                           frame[21] == 2 && std::memcmp(frame + 28, kGuestIp, 4) == 0;
    if (arp_reply) return std::vector<uint8_t>(frame + 22, frame + 28);
  }
  return {};
}

class LinuxBootKvmTest : public ::testing::TestWithParam<const char*> {};

TEST_P(LinuxBootKvmTest, DemoKernelFindsVirtioNetThroughAcpi) {
  if (!HasHardwareVirtualization())
    GTEST_SKIP() << "no svm/vmx in /proc/cpuinfo: a Linux guest needs hardware KVM (run in the "
                    "KVM test host)";
  const std::string dir = testing::DemoImageDir();
  if (dir.empty()) GTEST_SKIP() << "demo image not built: run images/demo/build.sh";

  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  ConsoleText console;
  BootConfig config;
  config.kernel_path = dir + "/" + GetParam();
  config.initrd_path = dir + "/initrd.img";
  // quiet: the kernel's boot log is not needed here (the checks read the init's lines) and under
  // nested KVM every console byte is an exit to this process.
  config.cmdline = "console=ttyS0 panic=-1 quiet phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1";
  config.with_net = true;
  config.net.tap_fd = fds[0];
  config.console = console.Sink();
  {
    auto machine = Machine::Boot(config);
    ASSERT_TRUE(machine) << machine.error().message;
    ASSERT_TRUE((*machine)->Start(nullptr));
    // A boot takes 15-30 s in the KVM test host (nested under TCG); 120 s keeps a stuck guest
    // from eating the kvm suite's time budget.
    const bool ready = console.WaitFor("PHOENIX-READY", 120s);
    const std::string text = console.Text();
    const MachineStats stats = (*machine)->Stats();
    EXPECT_TRUE(ready) << (*machine)->failure().message << "\nexits " << stats.exits << " io "
                       << stats.io_exits << " mmio " << stats.mmio_exits << "\nconsole:\n"
                       << text;
    const std::vector<uint8_t> mac = ArpGuest(fds[1], 20s);
    EXPECT_EQ(mac, std::vector<uint8_t>(config.net.mac.begin(), config.net.mac.end()))
        << "no ARP reply for 172.16.0.2: virtio-net not found through ACPI?\nconsole:\n"
        << text;
    EXPECT_EQ(text.find("phoenix-init:"), std::string::npos) << "the init complained:\n" << text;
    EXPECT_EQ(text.find("insmod"), std::string::npos) << text;
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

INSTANTIATE_TEST_SUITE_P(Kernels, LinuxBootKvmTest, ::testing::Values("vmlinux", "vmlinuz"));

}  // namespace
}  // namespace phoenix::vmm::x86
