// A hostile guest against the node, with the real phoenix-agent, crun and libvirt/QEMU: a variant
// of the demo image carries phoenix-guest-probe (tests/security/guest_probe.cc), and its VM kernel
// command line names the same probes (phoenix.probe=, images/demo/vm/init).
//  - Containers: the calls the seccomp profile refuses (keyrings, user namespaces, mount, BPF,
//    perf, ptrace, userfaultfd) fail with EPERM.
//  - Containers and VMs: no connection reaches a port on the host that the guest was not given:
//    loopback services (standing in for an agent on --insecure-tcp, libvirtd's TCP listener, the
//    supervisor), a wildcard listener, and a sibling guest's published port.
//  - A guest flooding its console does not fill the node's disk: the log is rotated at its cap.
#include <unistd.h>

#include <map>
#include <regex>

#include <gmock/gmock.h>

#include "tests/integration/support/http.h"
#include "tests/integration/support/tcp_listener.h"
#include "tests/security/support/agent_under_attack.h"

namespace phoenix::security {
namespace {

using ::testing::HasSubstr;

// "PHOENIX-PROBE <kind> <what> <result>" lines of a console: what -> result.
std::map<std::string, std::string> ProbeResults(const std::string& console, const char* kind) {
  std::map<std::string, std::string> out;
  std::regex line(std::string("PHOENIX-PROBE ") + kind + " (\\S+) (\\S+)");
  for (auto it = std::sregex_iterator(console.begin(), console.end(), line);
       it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = (*it)[2];
  }
  return out;
}

class GuestEscapeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path demo = Env("PHOENIX_DEMO_IMAGE_DIR");
    ASSERT_FALSE(demo.empty()) << "PHOENIX_DEMO_IMAGE_DIR is not set (run through ctest)";
    if (!fs::exists(demo / "manifest.env")) {
      auto built = testing::RunCommand({Env("PHOENIX_DEMO_RECIPE"), demo.string()});
      ASSERT_EQ(built.exit_code, 0) << "building the demo image failed:\n" << built.output;
    }
    agent_.Start("security-guest-escape", {"--console-log-max", "65536"});
    ASSERT_TRUE(agent_.Import(demo, "demo").ok());
    probe_image_ = agent_.state_dir() / "probe-image";
    MakeProbeImage(demo, probe_image_, "");
    grpc::Status s = agent_.Import(probe_image_, "probe");
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  static void TearDownTestSuite() { agent_.Stop(); }

  // The demo image plus phoenix-guest-probe in its root filesystem, and `cmdline_extra` on its
  // kernel command line. Artifacts are hard links where possible (never symlinks: import refuses
  // those).
  static void MakeProbeImage(const fs::path& demo, const fs::path& out,
                             const std::string& cmdline_extra) {
    fs::remove_all(out);
    fs::create_directories(out);
    for (const char* f : {"vmlinux", "initrd.img", "disk.qcow2"}) {
      std::error_code linked;
      fs::create_hard_link(demo / f, out / f, linked);
      if (linked) fs::copy_file(demo / f, out / f);  // another filesystem
    }
    auto copied =
        testing::RunCommand({"cp", "-a", (demo / "rootfs").string(), (out / "rootfs").string()});
    ASSERT_EQ(copied.exit_code, 0) << copied.output;
    fs::copy_file(Env("PHOENIX_GUEST_PROBE_BIN"), out / "rootfs" / "bin" / "phoenix-guest-probe");
    fs::permissions(out / "rootfs" / "bin" / "phoenix-guest-probe", fs::perms(0755));
    std::string manifest = Slurp(demo / "manifest.env");
    manifest = std::regex_replace(manifest, std::regex("NAME=[^\n]*"), "NAME=probe");
    if (!cmdline_extra.empty()) {
      manifest = std::regex_replace(manifest, std::regex("CMDLINE=([^\n]*)"),
                                    "CMDLINE=$1 " + cmdline_extra);
    }
    std::ofstream(out / "manifest.env") << manifest;
  }

  static v1::GuestSpec Spec(const std::string& name, v1::Runtime runtime,
                            const std::string& image = "probe") {
    v1::GuestSpec spec;
    spec.set_name(name);
    spec.set_image(image);
    spec.set_runtime(runtime);
    spec.set_memory_mib(runtime == v1::RUNTIME_CONTAINER ? 64 : 256);
    return spec;
  }

  // A demo container with a published port, answering on it (so a probe that cannot reach it is
  // not failing for nothing).
  static void StartSibling(const std::string& name, uint32_t* port) {
    v1::GuestSpec sibling = Spec(name, v1::RUNTIME_CONTAINER, "demo");
    sibling.add_ports()->set_guest_port(80);
    v1::Guest guest;
    ASSERT_TRUE(agent_.Run(sibling, &guest).ok());
    ASSERT_EQ(guest.endpoints_size(), 1);
    *port = guest.endpoints(0).host_port();
    ASSERT_TRUE(WaitFor(
        [&] { return testing::HttpGet(static_cast<uint16_t>(*port), "/health", 2s).has_value(); },
        60s))
        << "sibling " << name << " does not answer on its published port";
  }

  static AgentUnderAttack agent_;
  static fs::path probe_image_;
};

AgentUnderAttack GuestEscapeTest::agent_;
fs::path GuestEscapeTest::probe_image_;

TEST_F(GuestEscapeTest, ContainerSyscallsOutsideTheProfileAreRefused) {
  v1::GuestSpec spec = Spec("syscalls", v1::RUNTIME_CONTAINER);
  spec.add_command("/bin/phoenix-guest-probe");
  spec.add_command("syscalls");
  ASSERT_TRUE(agent_.Run(spec).ok());
  const std::string console = agent_.WaitForLog("syscalls", "PHOENIX-PROBE done", 60s);
  auto results = ProbeResults(console, "syscall");
  for (const char* call : {"keyctl", "add_key", "unshare_user", "mount", "bpf", "perf_event_open",
                           "ptrace", "userfaultfd"}) {
    EXPECT_EQ(results[call], "EPERM") << call << "\nconsole:\n" << console;
  }
  agent_.DeleteGuest("syscalls");
}

TEST_F(GuestEscapeTest, AContainerReachesNoHostPortItWasNotGiven) {
  testing::TcpListener loopback_service("127.0.0.1"), wildcard_service("0.0.0.0");
  uint32_t sibling_port = 0;
  ASSERT_NO_FATAL_FAILURE(StartSibling("sibling", &sibling_port));

  std::vector<std::string> targets;
  for (const char* host : {"127.0.0.1", "10.0.2.2", "172.16.0.1"}) {
    for (uint32_t port :
         {uint32_t{loopback_service.port()}, uint32_t{wildcard_service.port()}, sibling_port}) {
      targets.push_back(std::string(host) + ":" + std::to_string(port));
    }
  }
  v1::GuestSpec spec = Spec("reach", v1::RUNTIME_CONTAINER);
  spec.add_command("/bin/phoenix-guest-probe");
  spec.add_command("connect");
  for (const auto& t : targets) spec.add_command(t);
  ASSERT_TRUE(agent_.Run(spec).ok());
  const std::string console = agent_.WaitForLog("reach", "PHOENIX-PROBE done", 120s);
  auto results = ProbeResults(console, "connect");
  for (const auto& t : targets) {
    ASSERT_TRUE(results.contains(t)) << t << " was not tried\n" << console;
    EXPECT_NE(results[t], "open") << "a container reached " << t;
  }
  agent_.DeleteGuest("reach");
  agent_.DeleteGuest("sibling");
}

TEST_F(GuestEscapeTest, AVmReachesNoHostPortItWasNotGiven) {
  testing::TcpListener loopback_service("127.0.0.1"), wildcard_service("0.0.0.0");
  uint32_t sibling_port = 0;
  ASSERT_NO_FATAL_FAILURE(StartSibling("vm-sibling", &sibling_port));

  // 10.0.2.2 and 10.0.2.3 are what QEMU user networking maps to the host; 127.0.0.1:80 is the
  // guest's own web app, which must answer (so "closed" is the network's verdict, not the probe's).
  std::vector<std::string> targets = {"127.0.0.1:80"};
  for (const char* host : {"10.0.2.2", "10.0.2.3"}) {
    for (uint32_t port :
         {uint32_t{loopback_service.port()}, uint32_t{wildcard_service.port()}, sibling_port}) {
      targets.push_back(std::string(host) + ":" + std::to_string(port));
    }
  }
  std::string probe_arg = "phoenix.probe=";
  for (size_t i = 0; i < targets.size(); ++i) probe_arg += (i ? "," : "") + targets[i];
  const fs::path image = agent_.state_dir() / "probe-vm-image";
  MakeProbeImage(Env("PHOENIX_DEMO_IMAGE_DIR"), image, probe_arg);
  grpc::Status imported = agent_.Import(image, "probe-vm");
  ASSERT_TRUE(imported.ok()) << imported.error_message();

  v1::GuestSpec spec = Spec("vm-reach", v1::RUNTIME_VM, "probe-vm");
  spec.set_boot_mode(v1::BOOT_MODE_COLD);  // the probe runs at boot, in this instance's console
  spec.add_ports()->set_guest_port(80);
  v1::Guest vm;
  grpc::Status ran = agent_.Run(spec, &vm);
  ASSERT_TRUE(ran.ok()) << ran.error_message();
  const std::string console = agent_.WaitForLog("vm-reach", "PHOENIX-PROBE done", 600s);
  auto results = ProbeResults(console, "connect");
  EXPECT_EQ(results["127.0.0.1:80"], "open") << "the probe works inside the VM\n" << console;
  for (size_t i = 1; i < targets.size(); ++i) {
    ASSERT_TRUE(results.contains(targets[i])) << targets[i] << " was not tried\n" << console;
    EXPECT_EQ(results[targets[i]], "closed") << "the VM reached " << targets[i];
  }
  // What it was given still works: its own published port.
  auto got = agent_.Get("vm-reach");
  ASSERT_TRUE(got && got->endpoints_size() == 1);
  EXPECT_TRUE(WaitFor(
      [&] {
        return testing::HttpGet(static_cast<uint16_t>(got->endpoints(0).host_port()), "/health", 2s)
            .has_value();
      },
      120s));
  agent_.DeleteGuest("vm-reach");
  agent_.DeleteGuest("vm-sibling");
}

TEST_F(GuestEscapeTest, AConsoleFloodIsRotatedAtItsCap) {
  // ~2 KiB every 5 ms (~400 KiB/s) against a 64 KiB cap (--console-log-max 65536).
  v1::GuestSpec spec = Spec("flood", v1::RUNTIME_CONTAINER, "demo");
  spec.add_command("/bin/sh");
  spec.add_command("-c");
  spec.add_command(
      "line=$(head -c 2048 /dev/zero | tr '\\0' x); i=0; while [ $i -lt 4000 ]; do "
      "echo $line; usleep 5000; i=$((i+1)); done; sleep 600");
  v1::Guest guest;
  ASSERT_TRUE(agent_.Run(spec, &guest).ok());
  const fs::path dir = agent_.state_dir() / "guests" / guest.id();
  ASSERT_TRUE(WaitFor([&] { return fs::exists(dir / "console.log.1"); }, 60s))
      << "the log was never rotated";
  uint64_t largest = 0;
  for (int i = 0; i < 20; ++i) {  // 10 s of flood
    std::error_code ec;
    largest = std::max<uint64_t>(largest, fs::file_size(dir / "console.log", ec));
    std::this_thread::sleep_for(500ms);
  }
  // The cap plus what ~1 s of flood (one check interval) adds, with room for a slow machine.
  EXPECT_LT(largest, 2u * 1024 * 1024);
  EXPECT_LE(fs::file_size(dir / "console.log.1"), 65536u);
  agent_.DeleteGuest("flood");
}

}  // namespace
}  // namespace phoenix::security
