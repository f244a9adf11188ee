// End to end: the real phoenix-agent binary on an ephemeral port with a private state dir, real
// libvirtd and QEMU (KVM where usable, else TCG), the demo golden image. Walks the promise of the
// agent: a guest serves, is killed, rises from its golden image with its writes gone, survives an
// agent SIGKILL without being duplicated, and leaves nothing behind when deleted.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "tests/integration/support/http.h"
#include "tests/integration/support/process.h"

namespace phoenix {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::HttpGet;
using testing::RunCommand;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// Waits until `pred` holds, polling; bounded.
bool WaitFor(const std::function<bool()>& pred, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(250ms);
  }
  return pred();
}

std::vector<std::string> PhoenixDomains(const std::string& prefix) {
  auto r = RunCommand({"virsh", "-q", "-c", "qemu:///system", "list", "--all", "--name"});
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < r.output.size()) {
    size_t nl = r.output.find('\n', pos);
    std::string line = r.output.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

class AgentE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string image_dir = Env("PHOENIX_DEMO_IMAGE_DIR");
    ASSERT_FALSE(image_dir.empty()) << "PHOENIX_DEMO_IMAGE_DIR is not set (run through ctest)";
    if (!fs::exists(fs::path(image_dir) / "manifest.env")) {
      auto built = RunCommand({Env("PHOENIX_DEMO_RECIPE"), image_dir});
      ASSERT_EQ(built.exit_code, 0) << "building the demo image failed:\n" << built.output;
    }
    state_dir_ = fs::path(Env("PHOENIX_TEST_TMP")) / ("agent-e2e-" + std::to_string(getpid()));
    fs::remove_all(state_dir_);
    fs::create_directories(state_dir_);
    StartAgent();
    v1::ImportImageRequest req;
    req.set_directory(image_dir);
    req.set_name("demo");
    v1::Image image;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->ImportImage(&ctx, req, &image);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  static void TearDownTestSuite() {
    agent_.KillAndWait(SIGTERM, 10s);
    // Leave no guest behind even when a test failed midway.
    for (const auto& d : PhoenixDomains("phx-e2e-")) {
      RunCommand({"virsh", "-c", "qemu:///system", "destroy", d});
    }
    fs::remove_all(state_dir_);
  }

  static void StartAgent() {
    const fs::path port_file = state_dir_ / "agent.port";
    fs::remove(port_file);
    auto child = ChildProcess::Spawn(
        {Env("PHOENIX_AGENT_BIN"), "--listen", "unix:" + (state_dir_ / "agent.sock").string(),
         "--state-dir", state_dir_.string(), "--port-file", port_file.string(), "--log-level",
         "debug"},
        (state_dir_ / "agent.log").string());
    ASSERT_TRUE(child) << child.error().ToString();
    agent_ = std::move(*child);
    // The port file is written once the API serves (0: it is a Unix socket).
    auto serving = testing::WaitForIntFile(port_file.string(), 60s);
    ASSERT_TRUE(serving) << "agent did not start; see " << (state_dir_ / "agent.log");
    channel_ = grpc::CreateChannel("unix:" + (state_dir_ / "agent.sock").string(),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::AgentService::NewStub(channel_);
  }

  static grpc::Status Get(const std::string& name, v1::Guest* out) {
    grpc::ClientContext ctx;
    v1::GetGuestRequest req;
    req.set_name(name);
    return stub_->GetGuest(&ctx, req, out);
  }

  static void RunGuest(const v1::GuestSpec& spec) {
    v1::RunGuestRequest req;
    *req.mutable_spec() = spec;
    v1::Guest out;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RunGuest(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  static v1::KillGuestResponse KillGuest(const std::string& name) {
    v1::KillGuestResponse killed;
    grpc::ClientContext ctx;
    v1::KillGuestRequest req;
    req.set_name(name);
    grpc::Status s = stub_->KillGuest(&ctx, req, &killed);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return killed;
  }

  static void DeleteGuest(const std::string& name) {
    grpc::ClientContext ctx;
    v1::DeleteGuestRequest req;
    req.set_name(name);
    v1::DeleteGuestResponse resp;
    grpc::Status s = stub_->DeleteGuest(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Writes a file through the demo app and reads it back: proof to look for after a restart.
  static void WriteProof(uint16_t port) {
    auto wrote = HttpGet(port, "/cgi-bin/write?name=proof&data=phoenix");
    ASSERT_TRUE(wrote) << wrote.error().ToString();
    ASSERT_EQ(wrote->status, 200) << wrote->body;
    auto read = HttpGet(port, "/cgi-bin/read?name=proof");
    ASSERT_TRUE(read) << read.error().ToString();
    EXPECT_NE(read->body.find("phoenix"), std::string::npos);
  }

  static void ExpectProofGone(uint16_t port) {
    auto gone = HttpGet(port, "/cgi-bin/read?name=proof");
    ASSERT_TRUE(gone) << gone.error().ToString();
    EXPECT_EQ(gone->status, 404) << gone->body;
  }

  static v1::GuestSpec WebSpec(const std::string& name) {
    v1::GuestSpec spec;
    spec.set_name(name);
    spec.set_image("demo");
    spec.set_memory_mib(256);
    spec.add_ports()->set_guest_port(80);
    auto* health = spec.mutable_health();
    health->mutable_http()->set_port(80);
    health->set_interval_ms(500);
    health->set_timeout_ms(400);
    spec.set_boot_mode(v1::BOOT_MODE_SNAPSHOT);
    return spec;
  }

  static inline fs::path state_dir_;
  static inline ChildProcess agent_;
  static inline std::shared_ptr<grpc::Channel> channel_;
  static inline std::unique_ptr<v1::AgentService::Stub> stub_;
};

TEST_F(AgentE2ETest, RejectsBadSpecsNamingTheField) {
  struct Case {
    std::function<void(v1::GuestSpec&)> mutate;
    grpc::StatusCode code;
    std::string needle;
  };
  std::vector<Case> cases = {
      {[](v1::GuestSpec& s) { s.set_name("Bad_Name"); }, grpc::INVALID_ARGUMENT, "spec.name"},
      {[](v1::GuestSpec& s) { s.set_memory_mib(8); }, grpc::INVALID_ARGUMENT, "spec.memory_mib"},
      {[](v1::GuestSpec& s) { s.mutable_ports(0)->set_guest_port(70000); }, grpc::INVALID_ARGUMENT,
       "spec.ports[0].guest_port"},
      {[](v1::GuestSpec& s) { s.set_image("no-such-image"); }, grpc::NOT_FOUND, "spec.image"},
      {[](v1::GuestSpec& s) { s.set_memory_mib(512u << 10); }, grpc::RESOURCE_EXHAUSTED,
       "spec.memory_mib"},  // valid, but more than this node has
      {[](v1::GuestSpec& s) { s.set_memory_mib(64u << 20); }, grpc::INVALID_ARGUMENT,
       "spec.memory_mib"},  // beyond any node
  };
  for (const Case& c : cases) {
    v1::RunGuestRequest req;
    *req.mutable_spec() = WebSpec("e2e-bad");
    c.mutate(*req.mutable_spec());
    v1::Guest out;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RunGuest(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), c.code) << s.error_message();
    EXPECT_NE(s.error_message().find(c.needle), std::string::npos) << s.error_message();
  }
  // Nothing was left behind by the refused requests.
  EXPECT_TRUE(PhoenixDomains("phx-e2e-bad").empty());
  v1::Guest out;
  EXPECT_EQ(Get("e2e-bad", &out).error_code(), grpc::NOT_FOUND);
}

TEST_F(AgentE2ETest, GuestRisesFromGoldenImageAndSurvivesAgentRestart) {
  const std::string name = "e2e-web";
  {
    v1::RunGuestRequest req;
    *req.mutable_spec() = WebSpec(name);
    v1::Guest out;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RunGuest(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(out.endpoints_size(), 1);
    // A duplicate name is refused.
    grpc::ClientContext ctx2;
    v1::Guest dup;
    EXPECT_EQ(stub_->RunGuest(&ctx2, req, &dup).error_code(), grpc::ALREADY_EXISTS);
  }
  v1::Guest guest;
  // First start prepares the golden snapshot (one boot to the ready marker), then restores it.
  ASSERT_TRUE(WaitFor([&] { return Get(name, &guest).ok() && guest.healthy(); }, 600s))
      << guest.DebugString();
  const uint16_t port = static_cast<uint16_t>(guest.endpoints(0).host_port());
  EXPECT_EQ(guest.state(), v1::GUEST_STATE_RUNNING);
  EXPECT_EQ(guest.last_boot(), v1::BOOT_MODE_SNAPSHOT);

  auto health = HttpGet(port, "/health");
  ASSERT_TRUE(health) << health.error().ToString();
  EXPECT_EQ(health->status, 200);
  ASSERT_NO_FATAL_FAILURE(WriteProof(port));

  // SIGKILL the guest's QEMU through the chaos API.
  const std::string first_instance = guest.instance();
  v1::KillGuestResponse killed = KillGuest(name);
  EXPECT_GT(killed.pid(), 0);
  EXPECT_TRUE(WaitFor([&] { return !testing::ProcessAlive(killed.pid()); }, 10s));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Get(name, &guest).ok() && guest.restart_count() == 1 &&
               guest.state() == v1::GUEST_STATE_RUNNING && guest.healthy();
      },
      300s))
      << guest.DebugString();
  EXPECT_NE(guest.instance(), first_instance);
  EXPECT_EQ(guest.endpoints(0).host_port(), port) << "the published port survives restarts";
  // Risen from the golden image: the file written before the crash is gone, the image's is there.
  ASSERT_NO_FATAL_FAILURE(ExpectProofGone(port));
  auto golden = HttpGet(port, "/cgi-bin/read?name=golden.txt");
  ASSERT_TRUE(golden);
  EXPECT_EQ(golden->status, 200);

  // SIGKILL the agent and start it again: the guest is re-adopted, not restarted nor duplicated.
  const std::string instance = guest.instance();
  ASSERT_TRUE(agent_.KillAndWait(SIGKILL, 10s));
  EXPECT_EQ(PhoenixDomains("phx-" + name + "-"), std::vector<std::string>{instance})
      << "guests keep running while the agent is away";
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return Get(name, &guest).ok() && guest.healthy(); }, 120s))
      << guest.DebugString();
  EXPECT_EQ(guest.instance(), instance);
  EXPECT_EQ(guest.restart_count(), 1u);
  EXPECT_EQ(PhoenixDomains("phx-" + name + "-"), std::vector<std::string>{instance});
  auto again = HttpGet(port, "/health");
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->status, 200);

  // Delete leaves no domain and no overlay.
  const fs::path guest_dir = state_dir_ / "guests" / guest.id();
  EXPECT_TRUE(fs::exists(guest_dir));
  ASSERT_NO_FATAL_FAILURE(DeleteGuest(name));
  EXPECT_TRUE(PhoenixDomains("phx-" + name + "-").empty());
  EXPECT_FALSE(fs::exists(guest_dir));
  EXPECT_EQ(Get(name, &guest).error_code(), grpc::NOT_FOUND);
}

// Mounts, cgroups or files that still mention `instance` (nothing may be left after delete).
std::vector<std::string> Leftovers(const std::string& instance, const fs::path& state_dir) {
  std::vector<std::string> found;
  auto mounts = RunCommand({"grep", "-F", instance, "/proc/self/mountinfo"});
  if (mounts.exit_code == 0) found.push_back("mount: " + mounts.output);
  auto cgroups = RunCommand({"find", "/sys/fs/cgroup", "-maxdepth", "4", "-name", instance});
  if (!cgroups.output.empty()) found.push_back("cgroup: " + cgroups.output);
  auto files = RunCommand({"find", state_dir.string(), "-name", instance + "*"});
  if (!files.output.empty()) found.push_back("file: " + files.output);
  return found;
}

TEST_F(AgentE2ETest, ContainerRisesFreshFromGoldenRootfsAndSurvivesAgentRestart) {
  const std::string name = "e2e-ct";
  v1::GuestSpec spec = WebSpec(name);
  spec.set_runtime(v1::RUNTIME_CONTAINER);
  spec.set_boot_mode(v1::BOOT_MODE_AUTO);
  spec.set_memory_mib(64);
  ASSERT_NO_FATAL_FAILURE(RunGuest(spec));
  v1::Guest guest;
  ASSERT_TRUE(WaitFor([&] { return Get(name, &guest).ok() && guest.healthy(); }, 60s))
      << guest.DebugString();
  const uint16_t port = static_cast<uint16_t>(guest.endpoints(0).host_port());
  ASSERT_NO_FATAL_FAILURE(WriteProof(port));

  // Kill the container's init: it rises from the golden rootfs with a fresh upper dir.
  const std::string first_instance = guest.instance();
  EXPECT_GT(KillGuest(name).pid(), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return Get(name, &guest).ok() && guest.restart_count() == 1 &&
               guest.state() == v1::GUEST_STATE_RUNNING && guest.healthy();
      },
      60s))
      << guest.DebugString();
  EXPECT_NE(guest.instance(), first_instance);
  EXPECT_TRUE(Leftovers(first_instance, state_dir_).empty())
      << "the crashed instance's overlay, netns and cgroup are gone";
  ASSERT_NO_FATAL_FAILURE(ExpectProofGone(port));

  // The agent dies and comes back: the container keeps running and is re-adopted.
  const std::string instance = guest.instance();
  ASSERT_TRUE(agent_.KillAndWait(SIGKILL, 10s));
  auto during = HttpGet(port, "/health");
  EXPECT_FALSE(during) << "the published port belongs to the agent, so it is down with it";
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return Get(name, &guest).ok() && guest.healthy(); }, 60s))
      << guest.DebugString();
  EXPECT_EQ(guest.instance(), instance);
  EXPECT_EQ(guest.restart_count(), 1u);
  auto again = HttpGet(port, "/health");
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->status, 200);

  ASSERT_NO_FATAL_FAILURE(DeleteGuest(name));
  auto left = Leftovers(instance, state_dir_);
  EXPECT_TRUE(left.empty()) << left.front();
  EXPECT_FALSE(fs::exists(state_dir_ / "guests" / guest.id()));
}

TEST_F(AgentE2ETest, ContainerMemoryLimitIsEnforcedAndTheGuestRestarts) {
  const std::string name = "e2e-oom";
  v1::RunGuestRequest req;
  auto* spec = req.mutable_spec();
  spec->set_name(name);
  spec->set_image("demo");
  spec->set_runtime(v1::RUNTIME_CONTAINER);
  spec->set_memory_mib(64);
  for (const char* arg : {"/bin/sh", "-c", "head -c 200m /dev/zero | tail"}) spec->add_command(arg);
  spec->mutable_restart()->set_policy(v1::RESTART_POLICY_ON_FAILURE);
  spec->mutable_restart()->set_initial_backoff_ms(100);
  spec->mutable_restart()->set_max_backoff_ms(1000);
  ASSERT_NO_FATAL_FAILURE(RunGuest(*spec));
  v1::Guest guest;
  ASSERT_TRUE(WaitFor([&] { return Get(name, &guest).ok() && guest.restart_count() >= 1; }, 60s))
      << guest.DebugString();
  EXPECT_NE(guest.last_exit_reason().find("memory"), std::string::npos) << guest.last_exit_reason();
  ASSERT_NO_FATAL_FAILURE(DeleteGuest(name));
}

TEST_F(AgentE2ETest, VmAndContainerOfOneImageRunSideBySide) {
  for (auto [name, runtime] : {std::pair{"e2e-pair-vm", v1::RUNTIME_VM},
                               std::pair{"e2e-pair-ct", v1::RUNTIME_CONTAINER}}) {
    v1::GuestSpec spec = WebSpec(name);
    spec.set_runtime(runtime);
    spec.set_boot_mode(v1::BOOT_MODE_AUTO);
    ASSERT_NO_FATAL_FAILURE(RunGuest(spec));
  }
  std::map<std::string, v1::Guest> seen;
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext ctx;
        v1::ListGuestsResponse list;
        if (!stub_->ListGuests(&ctx, v1::ListGuestsRequest(), &list).ok()) return false;
        seen.clear();
        for (const auto& g : list.guests()) {
          if (g.healthy()) seen[g.spec().name()] = g;
        }
        return seen.contains("e2e-pair-vm") && seen.contains("e2e-pair-ct");
      },
      300s));
  EXPECT_EQ(seen["e2e-pair-vm"].spec().runtime(), v1::RUNTIME_VM);
  EXPECT_EQ(seen["e2e-pair-ct"].spec().runtime(), v1::RUNTIME_CONTAINER);
  EXPECT_EQ(seen["e2e-pair-vm"].image_id(), seen["e2e-pair-ct"].image_id()) << "one golden image";
  for (const auto& [name, g] : seen) {
    auto health = HttpGet(static_cast<uint16_t>(g.endpoints(0).host_port()), "/health");
    ASSERT_TRUE(health) << name << ": " << health.error().ToString();
    EXPECT_EQ(health->status, 200) << name;
  }
  for (const auto& [name, g] : seen) DeleteGuest(name);  // both, even if one fails
}

}  // namespace
}  // namespace phoenix
