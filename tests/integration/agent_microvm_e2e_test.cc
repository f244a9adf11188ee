// End to end for micro-VMs: the real phoenix-agent (ephemeral loopback port, state dir on a
// tmpfs) with the real phoenix-vmm and the demo image, driven by the real phoenixctl as a user
// would: `guest run --runtime microvm --boot snapshot --publish PORT:80`, HTTP on 127.0.0.1:PORT
// answered by the guest, `guest kill` (the chaos drill), the crash seen and the guest restored
// from its golden snapshot (`guest show`: last snapshot), HTTP answered again. Prints the kill ->
// answering-again time.
//
// libvirtd and crun need not be there: the agent starts with those runtimes unavailable and says
// so in its log. Label kvm. A Linux guest needs hardware virtualization: skips when /proc/cpuinfo
// has neither svm nor vmx (kvm-pvm); runs directly on real KVM and inside tools/kvm-test-host.
// Unix sockets and netns bind mounts need a local filesystem: the state dir goes to
// $PHOENIX_TEST_TMP (a tmpfs in the test host) or /tmp. Needs root (namespaces, taps).
// Environment: PHOENIX_AGENT_BIN, PHOENIXCTL_BIN, PHOENIX_VMM, PHOENIX_DEMO_IMAGE_DIR (built on
// demand with PHOENIX_DEMO_RECIPE), PHOENIX_TEST_TMP.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/tcp_listener.h"

namespace phoenix {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::ChildProcess;
using testing::HttpGet;
using testing::RunCommand;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

bool HasHardwareVirtualization() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    if (!line.starts_with("flags")) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string word; words >> word;) {
      if (word == "svm" || word == "vmx") return true;
    }
  }
  return false;
}

// A loopback port nobody listens on right now (the agent binds it for the published port).
uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string ReadFile(const fs::path& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class AgentMicroVmE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HasHardwareVirtualization()) {
      GTEST_SKIP() << "/proc/cpuinfo has neither svm nor vmx: no KVM here can boot the demo "
                      "kernel (a software /dev/kvm such as kvm-pvm cannot); run it in "
                      "tools/kvm-test-host";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, taps)";
    for (const char* var : {"PHOENIX_AGENT_BIN", "PHOENIXCTL_BIN", "PHOENIX_VMM"}) {
      ASSERT_FALSE(Env(var).empty()) << var << " is not set (run through ctest)";
    }
    image_dir_ = Env("PHOENIX_DEMO_IMAGE_DIR");
    ASSERT_FALSE(image_dir_.empty()) << "PHOENIX_DEMO_IMAGE_DIR is not set (run through ctest)";
    if (!fs::exists(fs::path(image_dir_) / "manifest.env")) {
      auto built = RunCommand({Env("PHOENIX_DEMO_RECIPE"), image_dir_});
      ASSERT_EQ(built.exit_code, 0) << "building the demo image failed:\n" << built.output;
    }
    const std::string tmp = Env("PHOENIX_TEST_TMP").empty() ? "/tmp" : Env("PHOENIX_TEST_TMP");
    state_dir_ = fs::path(tmp) / ("agent-microvm-e2e-" + std::to_string(::getpid()));
    fs::remove_all(state_dir_);
    fs::create_directories(state_dir_);

    const fs::path port_file = state_dir_ / "agent.port";
    // No --libvirt-uri, no crun on purpose: where they are missing the agent still serves.
    auto child = ChildProcess::Spawn(
        {Env("PHOENIX_AGENT_BIN"), "--listen", "unix:" + (state_dir_ / "agent.sock").string(),
         "--state-dir", state_dir_.string(), "--port-file", port_file.string(), "--vmm",
         Env("PHOENIX_VMM"), "--log-level", "debug"},
        (state_dir_ / "agent.log").string());
    ASSERT_TRUE(child) << child.error().ToString();
    agent_ = std::move(*child);
    // The port file is written once the API serves (0: it is a Unix socket).
    auto serving = testing::WaitForIntFile(port_file.string(), 60s);
    ASSERT_TRUE(serving) << "agent did not start:\n" << ReadFile(state_dir_ / "agent.log");
    endpoint_ = "unix:" + (state_dir_ / "agent.sock").string();
    stub_ = v1::AgentService::NewStub(
        grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (stub_) {
      // Monitors outlive the agent: delete the guest first so no phoenix-vmm is left behind.
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 30s);
      v1::DeleteGuestRequest req;
      req.set_name(kGuest);
      v1::DeleteGuestResponse resp;
      (void)stub_->DeleteGuest(&ctx, req, &resp);
    }
    agent_.KillAndWait(SIGTERM, 10s);
    if (HasFailure() && !state_dir_.empty()) {
      std::cerr << "---- agent log ----\n" << ReadFile(state_dir_ / "agent.log");
    }
    if (!state_dir_.empty()) fs::remove_all(state_dir_);
  }

  // phoenixctl against this agent; its exit status and output.
  testing::CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {Env("PHOENIXCTL_BIN"), "--endpoint", endpoint_});
    return RunCommand(args);
  }

  grpc::Status Get(v1::Guest* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::GetGuestRequest req;
    req.set_name(kGuest);
    return stub_->GetGuest(&ctx, req, out);
  }

  // Polls `pred` every 50 ms until it holds or `timeout` passed.
  static bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return pred();
  }

  static bool Answers(uint16_t port) {
    auto r = HttpGet(port, "/health", 2s);
    return r && r->status == 200;
  }

  static constexpr char kGuest[] = "web";
  std::string image_dir_;
  fs::path state_dir_;
  ChildProcess agent_;
  std::string endpoint_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
};

TEST_F(AgentMicroVmE2ETest, MicroVmServesIsKilledAndRisesFromItsGoldenSnapshot) {
  // The agent came up although the other runtimes may not be usable here, and said why.
  const std::string log = ReadFile(state_dir_ / "agent.log");
  EXPECT_NE(log.find("microvm runtime: phoenix-vmm on"), std::string::npos) << log;
  for (const char* runtime : {"vm runtime:", "container runtime:"}) {
    EXPECT_NE(log.find(runtime), std::string::npos) << "the agent names each runtime's state";
  }

  auto imported = Ctl({"image", "import", image_dir_, "--name", "demo"});
  ASSERT_EQ(imported.exit_code, 0) << imported.output;

  const uint16_t port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  const auto created = Clock::now();
  auto run = Ctl({"guest", "run", kGuest, "--image", "demo", "--runtime", "microvm", "--boot",
                  "snapshot", "--memory", "128", "--publish", std::to_string(port) + ":80",
                  "--health-http", "80/health", "--health-interval", "500ms"});
  ASSERT_EQ(run.exit_code, 0) << run.output;

  // The first start boots the golden snapshot once (boot to the ready marker, snapshot), then
  // restores it.
  v1::Guest guest;
  ASSERT_TRUE(WaitFor([&] { return Answers(port); }, 240s))
      << (Get(&guest).ok() ? guest.DebugString() : "no guest")
      << Ctl({"guest", "logs", kGuest}).output;
  const double first_ms = MillisSince(created);
  ASSERT_TRUE(Get(&guest).ok());
  EXPECT_EQ(guest.spec().runtime(), v1::RUNTIME_MICROVM);
  EXPECT_EQ(guest.last_boot(), v1::BOOT_MODE_SNAPSHOT);
  const std::string first_instance = guest.instance();
  const uint32_t first_boot_ms = guest.last_boot_ms();
  auto root = HttpGet(port, "/");
  ASSERT_TRUE(root) << root.error().ToString();
  EXPECT_EQ(root->status, 200) << root->body;

  // The chaos drill: SIGKILL the guest's phoenix-vmm.
  const auto kill_start = Clock::now();
  auto killed = Ctl({"guest", "kill", kGuest});
  ASSERT_EQ(killed.exit_code, 0) << killed.output;
  // phoenixctl's own start-up is part of the drill's time; under TCG it is most of a second.
  const double ctl_ms = MillisSince(kill_start);
  // Only once the agent has seen the crash and started a new instance can an answer not come from
  // the killed one.
  double running_ms = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        if (!Get(&guest).ok() || guest.restart_count() < 1 ||
            guest.state() != v1::GUEST_STATE_RUNNING) {
          return false;
        }
        if (running_ms == 0) running_ms = MillisSince(kill_start);
        return Answers(port);
      },
      60s))
      << guest.DebugString();
  const double answering_ms = MillisSince(kill_start);
  EXPECT_EQ(guest.restart_count(), 1u);
  EXPECT_NE(guest.instance(), first_instance);
  EXPECT_EQ(guest.last_boot(), v1::BOOT_MODE_SNAPSHOT) << "restarted from the golden snapshot";
  EXPECT_FALSE(guest.last_exit_reason().empty());

  auto show = Ctl({"guest", "show", kGuest});
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("last snapshot"), std::string::npos) << show.output;
  auto events = Ctl({"events", "--agent", "--guest", kGuest, "-o", "json"});
  EXPECT_EQ(events.exit_code, 0) << events.output;
  EXPECT_NE(events.output.find("EVENT_TYPE_GUEST_CRASHED"), std::string::npos) << events.output;

  std::cout << "first start (golden boot + restore) to HTTP answer: " << std::llround(first_ms)
            << " ms (agent: last boot " << first_boot_ms << " ms)\n"
            << "kill -> running again: " << std::llround(running_ms) << " ms (agent: restore "
            << guest.last_boot_ms() << " ms)\n"
            << "kill -> HTTP answering again: " << std::llround(answering_ms) << " ms (of which "
            << std::llround(ctl_ms) << " ms until phoenixctl guest kill returned)\n"
            << "---- phoenixctl guest show " << kGuest << " ----\n"
            << show.output;

  auto removed = Ctl({"guest", "rm", kGuest});
  EXPECT_EQ(removed.exit_code, 0) << removed.output;
  EXPECT_FALSE(Answers(port));
}

TEST_F(AgentMicroVmE2ETest, AHostileMicroVmReachesNoHostPortItWasNotGiven) {
  testing::TcpListener loopback("127.0.0.1"), wildcard("0.0.0.0");
  const uint16_t published = FreeLoopbackPort();
  // 172.16.0.1 is the instance namespace's side of the guest's tap; 10.0.2.2 is what a guest
  // expecting QEMU user networking would try for the host. 127.0.0.1:80 is the guest's own web
  // app, which must answer (so "closed" is the network's verdict, not a broken probe's).
  std::vector<std::string> targets = {"127.0.0.1:80"};
  for (const char* host : {"172.16.0.1", "10.0.2.2"}) {
    for (uint16_t port : {loopback.port(), wildcard.port(), published}) {
      targets.push_back(std::string(host) + ":" + std::to_string(port));
    }
  }
  std::string probe = "phoenix.probe=";
  for (size_t i = 0; i < targets.size(); ++i) probe += (i ? "," : "") + targets[i];

  // The demo image with the probe on its kernel command line (copies: import refuses symlinks,
  // and the state dir is a tmpfs in the test host, so no hard links either).
  const fs::path image = state_dir_ / "probe-image";
  fs::create_directories(image);
  for (const char* f : {"vmlinux", "initrd.img"}) {
    fs::copy_file(fs::path(image_dir_) / f, image / f);
  }
  std::string manifest;
  std::ifstream in(fs::path(image_dir_) / "manifest.env");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("NAME=")) line = "NAME=probe";
    if (line.starts_with("CMDLINE=")) line += " " + probe;
    if (line.starts_with("RUNTIMES=")) line = "RUNTIMES=microvm";
    if (line.starts_with("DISK=") || line.starts_with("ROOTFS=") || line.starts_with("COMMAND=")) {
      continue;
    }
    manifest += line + "\n";
  }
  std::ofstream(image / "manifest.env") << manifest;
  auto imported = Ctl({"image", "import", image.string(), "--name", "probe"});
  ASSERT_EQ(imported.exit_code, 0) << imported.output;

  auto run = Ctl({"guest", "run", kGuest, "--image", "probe", "--runtime", "microvm", "--boot",
                  "cold", "--memory", "128", "--publish", std::to_string(published) + ":80"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  std::string console;
  ASSERT_TRUE(WaitFor(
      [&] {
        console = Ctl({"guest", "logs", kGuest}).output;
        return console.find("PHOENIX-PROBE done") != std::string::npos;
      },
      240s))
      << console;
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string line = "PHOENIX-PROBE connect " + targets[i] + " ";
    const size_t at = console.find(line);
    ASSERT_NE(at, std::string::npos) << targets[i] << " was not tried\n" << console;
    const std::string verdict =
        console.substr(at + line.size(), console.find('\n', at) - at - line.size());
    EXPECT_EQ(verdict.substr(0, verdict.find_first_of("\r ")), i == 0 ? "open" : "closed")
        << targets[i] << "\n"
        << console;
  }
  // What it was given still works: its published port.
  EXPECT_TRUE(WaitFor([&] { return Answers(published); }, 60s));
}

}  // namespace
}  // namespace phoenix
