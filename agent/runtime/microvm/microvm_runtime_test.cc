// MicroVmRuntime without a Linux guest: availability and Describe(), and the whole instance
// lifecycle (golden boot, restore, ready line, crash event, stop over the control socket,
// re-adoption by a new runtime, destroy) against a stand-in for phoenix-vmm: a test script that
// speaks the monitor's CLI, ready line and control protocol and checks it was handed a tap on fd 3.
// The real monitor with a real guest is tests/security/microvm_attack_test.cc. Needs root
// (network namespaces, taps) and a usable /dev/kvm (the runtime's availability check); skips
// otherwise.
#include "agent/runtime/microvm/microvm_runtime.h"

#include <sched.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/vmm/cli/control.h"

namespace phoenix::agent::microvm {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

// Speaks phoenix-vmm's CLI. Records every invocation's mode in <state>/invocations.
constexpr char kFakeVmm[] = R"PY(#!/usr/bin/env python3
import os, socket, stat, sys
mode, args = sys.argv[1], sys.argv[2:]
opts, i = {}, 0
while i < len(args):
    if args[i] == '--exit-after-snapshot':
        opts[args[i]] = True; i += 1
    else:
        opts[args[i]] = args[i + 1]; i += 2
ready = os.fdopen(int(opts['--ready-fd']), 'w')
with open(os.environ['FAKE_VMM_LOG'], 'a') as f:
    f.write(mode + '\n')
tap = int(opts['--tap-fd'])
if not stat.S_ISCHR(os.fstat(tap).st_mode):
    ready.write('error --tap-fd is not a tap\n'); sys.exit(1)
if mode == 'boot' and '--snapshot-to' in opts:
    if os.environ.get('FAKE_VMM_FAIL_GOLDEN'):
        ready.write('error guest never printed the marker\n'); sys.exit(1)
    with open(os.path.join(opts['--snapshot-to'], 'state'), 'w') as f:
        f.write(opts['--cmdline'] + '\n' + opts['--memory-mib'] + '\n')
    ready.write('ready setup_us=5 marker_ms=7 snapshot=%s\n' % opts['--snapshot-to'])
    sys.exit(0)
if mode == 'restore' and not os.path.exists(os.path.join(opts['--snapshot'], 'state')):
    ready.write('error no snapshot\n'); sys.exit(1)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(opts['--control']); srv.listen(4)
ready.write('ready setup_us=3\n'); ready.close()
while True:
    c, _ = srv.accept()
    line = c.makefile().readline().strip()
    if line == 'ping':
        c.sendall(b'ok\n')
    elif line == 'stop':
        c.sendall(b'ok\n'); sys.exit(0)
    else:
        c.sendall(b'error unknown request\n')
    c.close()
)PY";

bool CanCreateNamespaces() {
  bool ok = false;
  std::thread t([&] { ok = ::unshare(CLONE_NEWNET) == 0; });
  t.join();
  return ok;
}

TEST(MicroVmAvailabilityTest, NoKvmSaysWhy) {
  boost::asio::io_context io;
  MicroVmRuntime rt(io, {.state_dir = "/tmp/unused", .kvm_device = "/nonexistent/kvm"});
  EXPECT_FALSE(rt.Available());
  EXPECT_EQ(rt.kind(), RuntimeKind::kMicroVm);
  EXPECT_THAT(rt.Describe(), HasSubstr("no /nonexistent/kvm: micro-VMs need KVM"));
  auto start = rt.Start(InstanceSpec{.instance = "phx-a",
                                     .image = {.image_id = "sha256:ab", .kernel = "/k"},
                                     .log_path = "/tmp/x.log"});
  ASSERT_FALSE(start);
  EXPECT_EQ(start.error().code, ErrorCode::kUnavailable);
}

TEST(MicroVmAvailabilityTest, NotAKvmDevice) {
  boost::asio::io_context io;
  MicroVmRuntime rt(io, {.state_dir = "/tmp/unused", .kvm_device = "/dev/null"});
  EXPECT_FALSE(rt.Available());
  EXPECT_THAT(rt.Describe(), HasSubstr("KVM_GET_API_VERSION on /dev/null"));
}

TEST(HardwareVirtualizationTest, VmxOrSvmFlagIsEnough) {
  EXPECT_TRUE(CheckHardwareVirtualization(
      "processor\t: 0\nflags\t\t: fpu vme de pse msr vmx smx est\n", false));
  EXPECT_TRUE(CheckHardwareVirtualization(
      "processor\t: 0\nflags\t\t: fpu svm\nprocessor\t: 1\nflags\t\t: fpu svm\n", true));
  // A flag only counts as a whole word on a flags line.
  EXPECT_FALSE(CheckHardwareVirtualization("flags\t\t: fpu svm_lock vmxx\n", false));
  EXPECT_FALSE(CheckHardwareVirtualization("model name\t: svm vmx\nflags\t\t: fpu\n", false));
  EXPECT_FALSE(CheckHardwareVirtualization("", false));
}

TEST(HardwareVirtualizationTest, SoftwareKvmIsRefusedSayingWhy) {
  // This machine's CPU: a guest CPU without vmx/svm, /dev/kvm from kvm-pvm.
  const std::string_view cpuinfo =
      "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse2 hypervisor "
      "lahf_lm\nbugs\t\t: spectre_v1\n";
  auto pvm = CheckHardwareVirtualization(cpuinfo, true);
  ASSERT_FALSE(pvm);
  EXPECT_EQ(pvm.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(pvm.error().message,
              HasSubstr("/dev/kvm is a software KVM (kvm-pvm; host CPU has no vmx/svm), which "
                        "cannot boot stock Linux kernels; use runtime vm (QEMU TCG) or a host "
                        "with VT-x/AMD-V"));
  auto other = CheckHardwareVirtualization(cpuinfo, false);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(other.error().message, HasSubstr("host CPU has no vmx/svm"));
  EXPECT_THAT(other.error().message, HasSubstr("use runtime vm (QEMU TCG)"));
}

// Where /dev/kvm works: the runtime is unavailable when the CPU has no vmx/svm, and refuses starts
// up front instead of letting the golden boot run into its timeout.
TEST(MicroVmAvailabilityTest, KvmWithoutHardwareVirtualizationIsUnavailable) {
  if (!CheckKvm("/dev/kvm")) GTEST_SKIP() << "no usable /dev/kvm";
  const fs::path dir = fs::temp_directory_path() / ("microvm_avail_" + std::to_string(::getpid()));
  fs::create_directories(dir / "kvm_pvm");
  std::ofstream(dir / "cpuinfo") << "processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n";
  boost::asio::io_context io;
  MicroVmRuntime rt(io, {.state_dir = dir / "state",
                         .vmm_binary = "/bin/true",
                         .cpuinfo = dir / "cpuinfo",
                         .kvm_pvm_module = dir / "kvm_pvm"});
  EXPECT_FALSE(rt.Available());
  EXPECT_THAT(rt.Describe(),
              HasSubstr("micro-VMs unavailable: /dev/kvm is a software KVM (kvm-pvm"));
  auto start = rt.Start(InstanceSpec{.instance = "phx-a",
                                     .image = {.image_id = "sha256:ab", .kernel = "/k"},
                                     .log_path = dir / "x.log"});
  ASSERT_FALSE(start);
  EXPECT_EQ(start.error().code, ErrorCode::kUnavailable);

  std::ofstream(dir / "cpuinfo") << "processor\t: 0\nflags\t\t: fpu sse2 svm\n";
  MicroVmRuntime ok(io, {.state_dir = dir / "state",
                         .vmm_binary = "/bin/true",
                         .cpuinfo = dir / "cpuinfo",
                         .kvm_pvm_module = dir / "kvm_pvm"});
  EXPECT_EQ(ok.Available(), ::access("/dev/net/tun", R_OK | W_OK) == 0) << ok.Describe();
  MicroVmRuntime unreadable(
      io, {.state_dir = dir / "state", .vmm_binary = "/bin/true", .cpuinfo = dir / "missing"});
  EXPECT_FALSE(unreadable.Available());
  EXPECT_THAT(unreadable.Describe(), HasSubstr("missing"));
  fs::remove_all(dir);
}

class MicroVmRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CheckKvm("/dev/kvm")) GTEST_SKIP() << "no usable /dev/kvm";
    if (!CanCreateNamespaces()) GTEST_SKIP() << "needs root for network namespaces";
    dir_ = fs::temp_directory_path() / ("microvm_rt_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "image");
    vmm_ = dir_ / "phoenix-vmm";
    std::ofstream(vmm_) << kFakeVmm;
    fs::permissions(vmm_, fs::perms::owner_all);
    std::ofstream(dir_ / "image" / "vmlinux") << "kernel";
    // The stand-in boots nothing, so it runs where /dev/kvm is a software KVM too.
    std::ofstream(dir_ / "cpuinfo") << "processor\t: 0\nflags\t\t: fpu svm\n";
    ::setenv("FAKE_VMM_LOG", (dir_ / "invocations").c_str(), 1);
    ::unsetenv("FAKE_VMM_FAIL_GOLDEN");
    image_ = {.image_id = "sha256:abc123",
              .kernel = dir_ / "image" / "vmlinux",
              .cmdline = "console=ttyS0",
              .ready_marker = "PHOENIX-READY"};
  }
  void TearDown() override {
    if (dir_.empty()) return;
    runtime_.reset();
    boost::asio::io_context io;
    MicroVmRuntime cleaner(io, Options());
    if (auto list = cleaner.List(); list) {
      for (const InstanceStatus& s : *list) (void)cleaner.Destroy(s.instance);
    }
    fs::remove_all(dir_);
  }
  MicroVmRuntimeOptions Options() const {
    return {.state_dir = dir_ / "state",
            .vmm_binary = vmm_,
            .cpuinfo = dir_ / "cpuinfo",
            .ready_timeout = milliseconds(10000)};
  }
  MicroVmRuntime& Runtime() {
    if (!runtime_) {
      runtime_ = std::make_unique<MicroVmRuntime>(io_, Options());
      runtime_->Watch([this](const RuntimeEvent& e) { events_.push_back(e); });
    }
    return *runtime_;
  }
  InstanceSpec Spec(const std::string& instance, BootMode mode = BootMode::kSnapshot) const {
    return InstanceSpec{.instance = instance,
                        .guest_id = "g-1",
                        .image = image_,
                        .memory_mib = 128,
                        .log_path = dir_ / "console.log",
                        .boot_mode = mode};
  }
  // Runs the io_context until an event arrived or 5 s passed.
  std::optional<RuntimeEvent> NextEvent() {
    for (int i = 0; i < 500 && events_.empty(); ++i) {
      io_.run_for(milliseconds(10));
      io_.restart();
    }
    if (events_.empty()) return std::nullopt;
    RuntimeEvent e = events_.front();
    events_.erase(events_.begin());
    return e;
  }
  int Invocations(const std::string& mode) const {
    std::ifstream f(dir_ / "invocations");
    int n = 0;
    for (std::string line; std::getline(f, line);) n += line == mode;
    return n;
  }

  fs::path dir_, vmm_;
  ImageArtifacts image_;
  boost::asio::io_context io_;
  std::unique_ptr<MicroVmRuntime> runtime_;
  std::vector<RuntimeEvent> events_;
};

TEST_F(MicroVmRuntimeTest, SnapshotStartRestoresGoldenAndKillIsACrash) {
  MicroVmRuntime& rt = Runtime();
  ASSERT_TRUE(rt.Available()) << rt.Describe();
  auto info = rt.Start(Spec("phx-a"));
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->boot, BootMode::kSnapshot);
  EXPECT_EQ(info->guest_address, "172.16.0.2");
  EXPECT_EQ(info->netns, rt.layout().NetnsFile("phx-a"));
  EXPECT_EQ(Invocations("boot"), 1);
  EXPECT_EQ(Invocations("restore"), 1);
  // The golden boot's command line carried the guest address; the snapshot was renamed in place.
  std::ifstream state(rt.layout().GoldenDir("abc123-128m-1c-v2") / "state");
  std::string cmdline;
  std::getline(state, cmdline);
  EXPECT_EQ(cmdline, "console=ttyS0 phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1");
  EXPECT_TRUE(phoenix::vmm::ControlCall(rt.layout().ControlSocket("phx-a").string(), "ping",
                                        milliseconds(1000)));

  auto killed = rt.Kill("phx-a");
  ASSERT_TRUE(killed) << killed.error().message;
  EXPECT_EQ(*killed, info->pid);
  auto event = NextEvent();
  ASSERT_TRUE(event);
  EXPECT_EQ(event->instance, "phx-a");
  EXPECT_TRUE(event->crashed);
  ASSERT_TRUE(rt.Destroy("phx-a"));
  EXPECT_FALSE(fs::exists(rt.layout().RunDir("phx-a")));
  EXPECT_FALSE(fs::exists(rt.layout().NetnsFile("phx-a")));

  // A second start of the same image restores without booting again.
  auto again = rt.Start(Spec("phx-b"));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(Invocations("boot"), 1);
  EXPECT_EQ(Invocations("restore"), 2);
}

TEST_F(MicroVmRuntimeTest, ConcurrentFirstStartsShareOneGoldenBoot) {
  MicroVmRuntime& rt = Runtime();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (const char* name : {"phx-c1", "phx-c2", "phx-c3"}) {
    threads.emplace_back([&, name] { ok += rt.Start(Spec(name)).has_value(); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(Invocations("boot"), 1);
  // Another memory size needs its own golden snapshot.
  InstanceSpec big = Spec("phx-c4");
  big.memory_mib = 256;
  ASSERT_TRUE(rt.Start(big));
  EXPECT_EQ(Invocations("boot"), 2);
}

TEST_F(MicroVmRuntimeTest, FailedGoldenBootLeavesNothing) {
  ::setenv("FAKE_VMM_FAIL_GOLDEN", "1", 1);
  MicroVmRuntime& rt = Runtime();
  auto info = rt.Start(Spec("phx-f"));
  ASSERT_FALSE(info);
  EXPECT_THAT(info.error().message, HasSubstr("guest never printed the marker"));
  EXPECT_FALSE(rt.HasGolden(image_, 1, 128));
  EXPECT_FALSE(fs::exists(rt.layout().RunDir("phx-f")));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir_ / "state" / "golden")) {
    if (e.path().filename().string().starts_with(".tmp-")) left.push_back(e.path());
  }
  EXPECT_TRUE(left.empty());
}

TEST_F(MicroVmRuntimeTest, ColdBootAndStopOverTheControlSocket) {
  MicroVmRuntime& rt = Runtime();
  auto info = rt.Start(Spec("phx-cold", BootMode::kCold));
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->boot, BootMode::kCold);
  EXPECT_EQ(Invocations("boot"), 1);
  EXPECT_FALSE(rt.HasGolden(image_, 1, 128));  // a cold boot makes no golden snapshot
  ASSERT_TRUE(rt.Stop("phx-cold", milliseconds(5000)));
  auto event = NextEvent();
  ASSERT_TRUE(event);
  EXPECT_FALSE(event->crashed) << event->reason;
}

TEST_F(MicroVmRuntimeTest, NewRuntimeReadoptsRunningMonitors) {
  int pid = 0;
  {
    MicroVmRuntime& rt = Runtime();
    auto info = rt.Start(Spec("phx-keep"));
    ASSERT_TRUE(info) << info.error().message;
    pid = info->pid;
    runtime_.reset();  // the agent "restarts"; the monitor keeps running
  }
  MicroVmRuntime& rt = Runtime();
  auto list = rt.List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].instance, "phx-keep");
  EXPECT_TRUE((*list)[0].running);
  EXPECT_EQ((*list)[0].pid, pid);
  EXPECT_EQ((*list)[0].guest_id, "g-1");
  EXPECT_EQ((*list)[0].guest_address, "172.16.0.2");
  ASSERT_TRUE(rt.Kill("phx-keep"));
  auto event = NextEvent();
  ASSERT_TRUE(event);
  EXPECT_TRUE(event->crashed);
  // A recorded pid that is now another process is not adopted.
  auto listed = rt.List();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_FALSE((*listed)[0].running);
}

}  // namespace
}  // namespace phoenix::agent::microvm
