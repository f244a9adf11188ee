// Needs /dev/kvm (label kvm): MicroVm and Machine::Restore driven by tiny 64-bit guest programs
// (testdata/*.S, assembled at build time, loaded at 0x10000 with identity page tables for 4 GiB).
#include "agent/vmm/machine/micro_vm.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "agent/vmm/machine/standard_devices.h"
#include "agent/vmm/snapshot/snapshot_file.h"

namespace phoenix::vmm {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kLoadAddress = 0x10000;
constexpr uint64_t kCounterAddress = 0x9000;
constexpr uint64_t kMemory = 4ull << 20;

std::vector<uint8_t> ReadGuest(const std::string& name) {
  std::ifstream in(std::string(PHX_GUEST_DIR) + "/" + name + ".bin", std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Identity-maps 0..4 GiB with 2 MiB pages (PML4 0x1000, PDPT 0x2000, PDs 0x3000..0x6fff), a flat
// GDT at 0x500 (0x08 code64, 0x10 data) and enters at kLoadAddress in long mode.
void EnterLongMode(MicroVm& vm, const std::vector<uint8_t>& code) {
  ASSERT_FALSE(code.empty());
  const GuestMemory& mem = vm.memory();
  ASSERT_TRUE(mem.Write(kLoadAddress, code));
  ASSERT_TRUE(mem.WriteObject<uint64_t>(0x1000, 0x2000 | 3));
  for (uint64_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(mem.WriteObject<uint64_t>(0x2000 + i * 8, (0x3000 + i * 0x1000) | 3));
    for (uint64_t j = 0; j < 512; ++j)
      ASSERT_TRUE(
          mem.WriteObject<uint64_t>(0x3000 + i * 0x1000 + j * 8, ((i << 30) | (j << 21)) | 0x83));
  }
  const uint64_t gdt[] = {0, 0x00af9b000000ffff, 0x00cf93000000ffff};
  ASSERT_TRUE(mem.WriteObject(0x500, gdt));
  ASSERT_TRUE(vm.SetBootState());
  const VcpuFd& bsp = vm.vcpu(0);
  auto sregs = bsp.GetSregs();
  ASSERT_TRUE(sregs);
  kvm_segment code_seg{};
  code_seg.limit = 0xffffffff;
  code_seg.selector = 0x08;
  code_seg.present = 1;
  code_seg.type = 11;
  code_seg.s = 1;
  code_seg.l = 1;
  code_seg.g = 1;
  kvm_segment data_seg = code_seg;
  data_seg.selector = 0x10;
  data_seg.type = 3;
  data_seg.l = 0;
  data_seg.db = 1;
  sregs->cs = code_seg;
  sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data_seg;
  sregs->gdt.base = 0x500;
  sregs->gdt.limit = sizeof gdt - 1;
  sregs->cr3 = 0x1000;
  sregs->cr4 = 1 << 5;                 // PAE
  sregs->cr0 = 0x80000011;             // PG | ET | PE
  sregs->efer = (1 << 8) | (1 << 10);  // LME | LMA
  auto set = bsp.SetSregs(*sregs);
  ASSERT_TRUE(set) << set.error().message;
  kvm_regs regs{};
  regs.rip = kLoadAddress;
  regs.rsp = 0x80000;
  regs.rflags = 2;
  ASSERT_TRUE(bsp.SetRegs(regs));
}

std::unique_ptr<MicroVm> NewVm(uint32_t vcpus = 1, bool has_net = false) {
  auto mem = GuestMemory::CreateAnonymous(kMemory);
  if (!mem) return nullptr;
  MachineShape shape;
  shape.vcpus = vcpus;
  shape.has_net = has_net;
  shape.mac = {0x06, 0, 0xac, 0x10, 0, 0x09};
  shape.memory_bytes = kMemory;
  auto vm = MicroVm::Create(shape, std::move(*mem), true, MicroVm::Clock::now());
  EXPECT_TRUE(vm) << vm.error().message;
  return vm ? std::move(*vm) : nullptr;
}

// Records every write by offset; reads answer `read_value`.
class RecordingDevice : public BusDevice {
 public:
  explicit RecordingDevice(uint64_t read_value) : read_value_(read_value) {}
  void Read(uint64_t, std::span<uint8_t> data) override {
    std::memcpy(data.data(), &read_value_, std::min(data.size(), sizeof read_value_));
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    uint64_t v = 0;
    std::memcpy(&v, data.data(), std::min(data.size(), sizeof v));
    std::lock_guard lock(mu_);
    writes_[offset].push_back(v);
  }
  std::vector<uint64_t> Writes(uint64_t offset) {
    std::lock_guard lock(mu_);
    return writes_[offset];
  }
  bool WaitFor(uint64_t offset, size_t count, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Writes(offset).size() >= count) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

 private:
  uint64_t read_value_;
  std::mutex mu_;
  std::map<uint64_t, std::vector<uint64_t>> writes_;
};

uint64_t Counter(const MicroVm& vm) {
  return std::atomic_ref<uint64_t>(
             *reinterpret_cast<uint64_t*>(vm.memory().HostAddress(kCounterAddress, 8)))
      .load();
}

bool WaitCounterAbove(const MicroVm& vm, uint64_t value) {
  for (int i = 0; i < 5000; ++i) {
    if (Counter(vm) > value) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/phx-vmm-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(MicroVmTest, PortIoReachesBusDeviceAndUnclaimedReadsAllOnes) {
  auto vm = NewVm();
  ASSERT_TRUE(vm);
  auto dev = std::make_shared<RecordingDevice>(0x42);
  ASSERT_TRUE(vm->io_bus().Insert(0x500, 8, dev));
  EnterLongMode(*vm, ReadGuest("io_guest"));
  ASSERT_TRUE(vm->Start(nullptr));
  ASSERT_TRUE(dev->WaitFor(7, 1));
  EXPECT_EQ(dev->Writes(0), std::vector<uint64_t>{0x43});
  EXPECT_EQ(dev->Writes(1), std::vector<uint64_t>{0xff});
  EXPECT_EQ(dev->Writes(4), std::vector<uint64_t>{0x12345678});
  EXPECT_EQ(dev->Writes(2), std::vector<uint64_t>{0x05});  // EFER.LME | EFER.LMA: long mode
  auto stats = vm->Stats();
  EXPECT_GE(stats.io_exits, 6u);
  EXPECT_EQ(stats.unhandled_io, 1u);
  EXPECT_EQ(vm->stop_reason(), StopReason::kRunning);
}

TEST(MicroVmTest, MmioReachesBusDevice) {
  auto vm = NewVm();
  ASSERT_TRUE(vm);
  auto dev = std::make_shared<RecordingDevice>(0x1122334455667788);
  ASSERT_TRUE(vm->mmio_bus().Insert(0xd0000000, 0x1000, dev));
  EnterLongMode(*vm, ReadGuest("mmio_guest"));
  ASSERT_TRUE(vm->Start(nullptr));
  ASSERT_TRUE(dev->WaitFor(0x28, 1));
  EXPECT_EQ(dev->Writes(8), std::vector<uint64_t>{0xcafe});
  EXPECT_EQ(dev->Writes(0x18), std::vector<uint64_t>{0x1122334455667789});
  EXPECT_EQ(dev->Writes(0x20), std::vector<uint64_t>{0xffffffff});
  EXPECT_EQ(vm->Stats().unhandled_mmio, 1u);
}

TEST(MicroVmTest, HaltedVcpuPausesAndStops) {
  auto vm = NewVm();
  ASSERT_TRUE(vm);
  EnterLongMode(*vm, ReadGuest("halt_guest"));
  std::atomic<int> stops{0};
  std::atomic<StopReason> reason{StopReason::kRunning};
  ASSERT_TRUE(vm->Start([&](StopReason r) {
    reason = r;
    ++stops;
  }));
  for (int i = 0; i < 5000 && Counter(*vm) != 0x7777; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(Counter(*vm), 0x7777u);
  std::this_thread::sleep_for(20ms);  // into HLT
  auto paused = vm->Pause();
  ASSERT_TRUE(paused) << paused.error().message;
  MachineState state;
  ASSERT_TRUE(vm->CaptureState(state));
  EXPECT_EQ(state.vcpus[0].mp_state.mp_state, static_cast<uint32_t>(KVM_MP_STATE_HALTED));
  EXPECT_EQ(state.vcpus[0].regs.rip, kLoadAddress + 14);  // after movq (12 bytes), cli, hlt
  ASSERT_TRUE(vm->Resume());
  vm->RequestStop();
  for (int i = 0; i < 5000 && stops == 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(stops.load(), 1);
  EXPECT_EQ(reason.load(), StopReason::kRequested);
  EXPECT_EQ(vm->stop_reason(), StopReason::kRequested);
}

TEST(MicroVmTest, InterruptThroughIoapicReachesGuestHandler) {
  auto vm = NewVm();
  ASSERT_TRUE(vm);
  auto dev = std::make_shared<RecordingDevice>(0);
  ASSERT_TRUE(vm->io_bus().Insert(0x500, 8, dev));
  EnterLongMode(*vm, ReadGuest("irq_guest"));
  auto line = vm->Interrupt(10);
  ASSERT_TRUE(vm->Start(nullptr));
  ASSERT_TRUE(dev->WaitFor(3, 1));  // IDT, LAPIC and IOAPIC programmed
  EXPECT_TRUE(dev->Writes(5).empty());
  line->Set(true);
  line->Set(false);
  ASSERT_TRUE(dev->WaitFor(5, 1));
  line->Set(true);
  line->Set(false);
  ASSERT_TRUE(dev->WaitFor(5, 2));
  EXPECT_EQ(dev->Writes(5), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(vm->stop_reason(), StopReason::kRunning);
}

TEST(MicroVmTest, PauseHoldsTheGuestAndResumeContinues) {
  auto vm = NewVm(2);  // the second vCPU never gets a SIPI: it must park from its wait state too
  ASSERT_TRUE(vm);
  EnterLongMode(*vm, ReadGuest("counter_guest"));
  ASSERT_TRUE(vm->Start(nullptr));
  ASSERT_TRUE(WaitCounterAbove(*vm, 1000));
  for (int round = 0; round < 3; ++round) {
    auto paused = vm->Pause();
    ASSERT_TRUE(paused) << paused.error().message;
    EXPECT_TRUE(vm->Stats().paused);
    uint64_t held = Counter(*vm);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(Counter(*vm), held);
    ASSERT_TRUE(vm->Resume());
    EXPECT_FALSE(vm->Stats().paused);
    ASSERT_TRUE(WaitCounterAbove(*vm, held + 1000));
  }
  EXPECT_FALSE(vm->Snapshot("/nonexistent-never-written"));  // running: refused
}

// The snapshot tests use the standard machine (serial, i8042, CMOS), as Machine::Restore does.
// With `tap_fd` >= 0 the machine also has virtio-net on it.
std::unique_ptr<MicroVm> StandardCounterVm(const std::string& snapshot_dir, uint64_t& at_snapshot,
                                           int tap_fd = -1) {
  auto vm = NewVm(1, tap_fd >= 0);
  if (!vm) return nullptr;
  EXPECT_TRUE(AddStandardDevices(*vm, nullptr, tap_fd));
  EnterLongMode(*vm, ReadGuest("counter_guest"));
  EXPECT_TRUE(vm->Start(nullptr));
  EXPECT_TRUE(WaitCounterAbove(*vm, 100000));
  EXPECT_TRUE(vm->Pause());
  at_snapshot = Counter(*vm);
  auto snap = vm->Snapshot(snapshot_dir);
  EXPECT_TRUE(snap) << snap.error().message;
  return vm;
}

TEST(MicroVmTest, RestoredGuestKeepsCountingFromSnapshot) {
  TempDir dir;
  uint64_t at_snapshot = 0;
  {
    auto original = StandardCounterVm(dir.path(), at_snapshot);
    ASSERT_TRUE(original);
    // The original may go on running; the snapshot is what it was when paused.
    ASSERT_TRUE(original->Resume());
    ASSERT_TRUE(WaitCounterAbove(*original, at_snapshot + 1000));
  }
  RestoreConfig config;
  config.snapshot_dir = dir.path();
  auto restored = Machine::Restore(config);
  ASSERT_TRUE(restored) << restored.error().message;
  auto* vm = dynamic_cast<MicroVm*>(restored->get());
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(Counter(*vm), at_snapshot);
  ASSERT_TRUE((*restored)->Start(nullptr));
  ASSERT_TRUE(WaitCounterAbove(*vm, at_snapshot + 100000));
  auto stats = (*restored)->Stats();
  EXPECT_TRUE(stats.restored);
  EXPECT_GT(stats.setup_to_first_run.count(), 0);
  // MAP_PRIVATE: nothing the restored guest wrote reaches the memory file.
  std::ifstream file(dir.path() + "/" + kMemoryFileName, std::ios::binary);
  file.seekg(kCounterAddress);
  uint64_t in_file = 0;
  file.read(reinterpret_cast<char*>(&in_file), sizeof in_file);
  EXPECT_EQ(in_file, at_snapshot);
  // A second snapshot of the restored machine restores too.
  ASSERT_TRUE((*restored)->Pause());
  uint64_t second_at = Counter(*vm);
  TempDir dir2;
  ASSERT_TRUE((*restored)->Snapshot(dir2.path()));
  restored->reset();
  config.snapshot_dir = dir2.path();
  auto again = Machine::Restore(config);
  ASSERT_TRUE(again) << again.error().message;
  auto* vm2 = dynamic_cast<MicroVm*>(again->get());
  EXPECT_EQ(Counter(*vm2), second_at);
  ASSERT_TRUE((*again)->Start(nullptr));
  ASSERT_TRUE(WaitCounterAbove(*vm2, second_at + 1000));
}

TEST(MicroVmTest, MachineWithNetRestoresOnlyWithATap) {
  TempDir dir;
  uint64_t at_snapshot = 0;
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  ASSERT_TRUE(StandardCounterVm(dir.path(), at_snapshot, fds[0]));  // takes fds[0]
  close(fds[1]);
  auto state = ReadSnapshotState(dir.path());
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_TRUE(state->shape.has_net);
  EXPECT_EQ(state->shape.mac[5], 0x09);
  bool has_virtio_state = false;
  for (const auto& d : state->devices) has_virtio_state |= d.name == "virtio-net0";
  EXPECT_TRUE(has_virtio_state);

  RestoreConfig config;
  config.snapshot_dir = dir.path();
  auto refused = Machine::Restore(config);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("tap"), std::string::npos);

  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  config.net.tap_fd = fds[0];
  auto restored = Machine::Restore(config);
  ASSERT_TRUE(restored) << restored.error().message;
  auto* vm = dynamic_cast<MicroVm*>(restored->get());
  ASSERT_TRUE((*restored)->Start(nullptr));
  ASSERT_TRUE(WaitCounterAbove(*vm, at_snapshot + 1000));
  ASSERT_TRUE((*restored)->Pause());  // quiesces the net backend too
  ASSERT_TRUE((*restored)->Resume());
  restored->reset();
  close(fds[1]);
}

TEST(MicroVmTest, CorruptSnapshotRefused) {
  TempDir dir;
  uint64_t at_snapshot = 0;
  ASSERT_TRUE(StandardCounterVm(dir.path(), at_snapshot));
  const std::string state_path = dir.path() + "/" + kStateFileName;
  std::fstream f(state_path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  auto size = static_cast<long>(f.tellg());
  ASSERT_GT(size, 100);
  f.seekg(size / 2);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(size / 2);
  f.write(&c, 1);
  f.close();
  RestoreConfig config;
  config.snapshot_dir = dir.path();
  auto restored = Machine::Restore(config);
  ASSERT_FALSE(restored);
  EXPECT_NE(restored.error().message.find(dir.path()), std::string::npos);
  std::printf("refusal: %s\n", restored.error().message.c_str());

  ASSERT_EQ(truncate(state_path.c_str(), size / 3), 0);
  EXPECT_FALSE(Machine::Restore(config));
}

}  // namespace
}  // namespace phoenix::vmm
