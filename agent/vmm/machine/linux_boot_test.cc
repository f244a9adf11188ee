// Needs /dev/kvm with hardware virtualization (label kvm; skips itself on kvm-pvm, where a stock
// kernel cannot boot): boots the demo image's vmlinux + initrd to its PHOENIX-READY marker on the
// serial console, snapshots it, restores the snapshot and checks the restored guest runs on.
// The image comes from $PHOENIX_DEMO_IMAGE_DIR or the cached build (images/README.md).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "agent/vmm/machine.h"
#include "agent/vmm/machine/micro_vm.h"

namespace phoenix::vmm {
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

std::string DemoImageDir() {
  if (const char* dir = std::getenv("PHOENIX_DEMO_IMAGE_DIR")) return dir;
  return PHX_DEMO_IMAGE_DIR;
}

class Console {
 public:
  ConsoleSink Sink() {
    return [this](std::span<const uint8_t> bytes) {
      std::lock_guard lock(mu_);
      text_.append(bytes.begin(), bytes.end());
    };
  }
  bool WaitFor(const std::string& marker, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu_);
        if (text_.find(marker) != std::string::npos) return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  std::string Tail() {
    std::lock_guard lock(mu_);
    return text_.size() > 2000 ? text_.substr(text_.size() - 2000) : text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

uint64_t Fingerprint(const GuestMemory& memory) {
  // FNV-1a over every word from 16 MiB (where the kernel is loaded) to 64 MiB: its .data and .bss
  // hold jiffies and the per-CPU clocks, which move whenever the kernel runs. Sampling sparser
  // words, or the low 16 MiB, can miss an idle guest that only woke for a few timer ticks.
  constexpr uint64_t kFrom = 16ull << 20, kTo = 64ull << 20;
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const uint64_t*>(memory.HostAddress(kFrom, kTo - kFrom));
  for (size_t i = 0; i < (kTo - kFrom) / 8; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

TEST(LinuxBootTest, DemoImageBootsToMarkerSnapshotsAndRestores) {
  if (!HasHardwareVirtualization())
    GTEST_SKIP() << "no svm/vmx in /proc/cpuinfo: a Linux guest needs hardware KVM (run in the "
                    "KVM test host)";
  const std::string image = DemoImageDir();
  if (!std::filesystem::exists(image + "/vmlinux"))
    GTEST_SKIP() << "demo image not built at " << image << " (images/demo/build.sh " << image
                 << ")";

  char tmpl[] = "/tmp/phx-vmm-linux-XXXXXX";
  const std::string snapshot_dir = mkdtemp(tmpl);
  Console boot_console;
  BootConfig config;
  config.memory_bytes = 128ull << 20;
  config.kernel_path = image + "/vmlinux";
  config.initrd_path = image + "/initrd.img";
  config.cmdline = "console=ttyS0 panic=-1 quiet";
  config.console = boot_console.Sink();
  {
    auto machine = Machine::Boot(config);
    ASSERT_TRUE(machine) << machine.error().message;
    ASSERT_TRUE((*machine)->Start(nullptr));
    ASSERT_TRUE(boot_console.WaitFor("PHOENIX-READY", 300s))
        << "stop reason " << static_cast<int>((*machine)->stop_reason()) << " "
        << (*machine)->failure().message << "\nconsole:\n"
        << boot_console.Tail();
    ASSERT_TRUE((*machine)->Pause());
    auto snap = (*machine)->Snapshot(snapshot_dir);
    ASSERT_TRUE(snap) << snap.error().message;
  }

  Console restored_console;
  RestoreConfig restore;
  restore.snapshot_dir = snapshot_dir;
  restore.console = restored_console.Sink();
  auto machine = Machine::Restore(restore);
  ASSERT_TRUE(machine) << machine.error().message;
  auto* vm = dynamic_cast<MicroVm*>(machine->get());
  ASSERT_NE(vm, nullptr);
  const uint64_t at_restore = Fingerprint(vm->memory());
  ASSERT_TRUE((*machine)->Start(nullptr));
  // An idle kernel wakes only for its timers: look once a second, for at most 10 s.
  bool ran = false;
  for (int i = 0; i < 10 && !ran; ++i) {
    std::this_thread::sleep_for(1s);
    ASSERT_EQ((*machine)->stop_reason(), StopReason::kRunning) << (*machine)->failure().message;
    ASSERT_TRUE((*machine)->Pause());
    ran = Fingerprint(vm->memory()) != at_restore;
    if (!ran) {
      ASSERT_TRUE((*machine)->Resume());
    }
  }
  EXPECT_TRUE(ran) << "the restored kernel did not run";
  auto stats = (*machine)->Stats();
  EXPECT_TRUE(stats.restored);
  std::printf("restore setup_to_first_run %lld us, guest resident %llu KiB\n",
              static_cast<long long>(stats.setup_to_first_run.count()),
              static_cast<unsigned long long>(stats.guest_resident_bytes >> 10));
  machine->reset();
  std::filesystem::remove_all(snapshot_dir);
}

}  // namespace
}  // namespace phoenix::vmm
