#include "agent/runtime/microvm/vmm_command.h"

#include <set>

#include "agent/vmm/cli/options.h"

#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::agent::microvm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ImageArtifacts Image(std::string id = "sha256:0123abcd") {
  ImageArtifacts image;
  image.image_id = std::move(id);
  image.kernel = "/img/vmlinux";
  image.initrd = "/img/initrd.img";
  image.cmdline = "console=ttyS0 panic=-1 quiet";
  image.ready_marker = "PHOENIX-READY";
  return image;
}

TEST(GoldenKeyTest, NamesImageMemoryAndVcpus) {
  EXPECT_EQ(GoldenKey(Image(), 1, 128).value(), "0123abcd-128m-1c-v2");
  EXPECT_EQ(GoldenKey(Image("ff00"), 2, 256).value(), "ff00-256m-2c-v2");
}

TEST(GoldenKeyTest, OtherMemoryOrVcpusGetOtherSnapshots) {
  const std::string base = GoldenKey(Image(), 1, 128).value();
  EXPECT_NE(GoldenKey(Image(), 1, 256).value(), base);
  EXPECT_NE(GoldenKey(Image(), 2, 128).value(), base);
  EXPECT_NE(GoldenKey(Image("sha256:0123abce"), 1, 128).value(), base);
}

TEST(GoldenKeyTest, RefusesIdsThatCouldEscapeTheGoldenDir) {
  for (const char* id : {"", "sha256:", "sha256:../x", "sha256:AB", "a/b", "sha256:12 3"}) {
    auto key = GoldenKey(Image(id), 1, 128);
    ASSERT_FALSE(key) << id;
    EXPECT_EQ(key.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(GoldenKey(Image(), 0, 128));
  EXPECT_FALSE(GoldenKey(Image(), 1, 0));
}

TEST(GuestCmdlineTest, AppendsTheFixedGuestAddress) {
  EXPECT_EQ(GuestCmdline("console=ttyS0 quiet "),
            "console=ttyS0 quiet phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1");
  EXPECT_EQ(GuestCmdline(""), "phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1");
}

TEST(BootArgvTest, GoldenBoot) {
  BootCommand c{.vmm = "/bin/phoenix-vmm",
                .kernel = "/img/vmlinux",
                .initrd = "/img/initrd.img",
                .cmdline = "console=ttyS0 phoenix.ip=172.16.0.2/30",
                .memory_mib = 128,
                .vcpus = 1,
                .ready_marker = "PHOENIX-READY",
                .snapshot_to = "/s/golden/.tmp-k-1",
                .console_log = "/s/golden/k.boot.log"};
  EXPECT_THAT(
      BootArgv(c),
      ElementsAre("/bin/phoenix-vmm", "boot", "--kernel", "/img/vmlinux", "--initrd",
                  "/img/initrd.img", "--cmdline", "console=ttyS0 phoenix.ip=172.16.0.2/30",
                  "--memory-mib", "128", "--vcpus", "1", "--tap-fd", "3", "--console-log",
                  "/s/golden/k.boot.log", "--ready-marker", "PHOENIX-READY", "--snapshot-to",
                  "/s/golden/.tmp-k-1", "--exit-after-snapshot", "--ready-fd", "4"));
}

TEST(BootArgvTest, ColdBootWithControlAndNoInitrd) {
  BootCommand c{.vmm = "/v",
                .kernel = "/k",
                .memory_mib = 64,
                .vcpus = 2,
                .ready_marker = "R",
                .control = "/run/x/control.sock"};
  EXPECT_THAT(BootArgv(c),
              ElementsAre("/v", "boot", "--kernel", "/k", "--memory-mib", "64", "--vcpus", "2",
                          "--tap-fd", "3", "--control", "/run/x/control.sock", "--ready-marker",
                          "R", "--ready-fd", "4"));
}

TEST(BootArgvTest, SnapshotNeedsAMarker) {
  BootCommand c{.vmm = "/v", .kernel = "/k", .snapshot_to = "/s"};
  auto argv = BootArgv(c);
  EXPECT_EQ(std::find(argv.begin(), argv.end(), "--snapshot-to"), argv.end());
}

TEST(RestoreArgvTest, MatchesTheCli) {
  RestoreCommand c{.vmm = "/v",
                   .snapshot = "/s/golden/k",
                   .control = "/s/run/phx-a/control.sock",
                   .console_log = "/g/console.log"};
  EXPECT_THAT(RestoreArgv(c), ElementsAre("/v", "restore", "--snapshot", "/s/golden/k", "--tap-fd",
                                          "3", "--console-log", "/g/console.log", "--control",
                                          "/s/run/phx-a/control.sock", "--ready-fd", "4"));
}

// The agent's flags are ones phoenix-vmm's own parser accepts, with the same meaning.
TEST(RestoreArgvTest, JailFlagsParseInTheMonitor) {
  RestoreCommand c{.vmm = "/v",
                   .snapshot = "/s/golden/k",
                   .control = "/s/run/phx-a/control.sock",
                   .console_log = "/g/console.log",
                   .jail = JailFlags{.uid = MonitorUid(1900000000, "phx-a"),
                                     .gid = 1900000000,
                                     .root = "/s/jail",
                                     .cgroups = {"/sys/fs/cgroup/memory/phoenix/vmm-phx-a",
                                                 "/sys/fs/cgroup/pids/phoenix/vmm-phx-a"}}};
  const std::vector<std::string> argv = RestoreArgv(c);
  const std::vector<std::string_view> args(argv.begin() + 1, argv.end());
  auto parsed = phoenix::vmm::ParseCommandLine(args);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->jailed());
  EXPECT_EQ(parsed->jail_uid, c.jail->uid);
  EXPECT_EQ(parsed->jail_gid, 1900000000u);
  EXPECT_EQ(parsed->jail_root, "/s/jail");
  EXPECT_THAT(parsed->cgroups, ElementsAre("/sys/fs/cgroup/memory/phoenix/vmm-phx-a",
                                           "/sys/fs/cgroup/pids/phoenix/vmm-phx-a"));
}

TEST(MonitorUidTest, StableUnprivilegedAndSpread) {
  const uint32_t base = 1900000000;
  EXPECT_EQ(MonitorUid(base, "phx-web-1"), MonitorUid(base, "phx-web-1"));
  std::set<uint32_t> uids;
  for (int i = 0; i < 100; ++i) {
    const uint32_t uid = MonitorUid(base, "phx-web-" + std::to_string(i));
    EXPECT_GT(uid, base);
    EXPECT_LE(uid, base + 65535);
    uids.insert(uid);
  }
  EXPECT_GE(uids.size(), 99u);  // FNV-1a over 65535 slots: a collision in 100 is rare
}

TEST(ReadyLineTest, Restore) {
  auto r = ParseReadyLine("ready setup_us=812\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->setup_us, 812u);
  EXPECT_FALSE(r->marker_ms);
  EXPECT_TRUE(r->snapshot.empty());
}

TEST(ReadyLineTest, GoldenBootWithSnapshotAndUnknownKeys) {
  auto r = ParseReadyLine("ready setup_us=12000 marker_ms=640 snapshot=/s/g future=1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->setup_us, 12000u);
  EXPECT_EQ(r->marker_ms, 640u);
  EXPECT_EQ(r->snapshot, "/s/g");
}

TEST(ReadyLineTest, ErrorLineCarriesTheMessage) {
  auto r = ParseReadyLine("error snapshot state file: bad checksum\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "phoenix-vmm: snapshot state file: bad checksum");
}

TEST(ReadyLineTest, RefusesGarbage) {
  for (const char* line : {"", "readyx", "hello", "ready setup_us=abc", "ready marker_ms=-1"}) {
    EXPECT_FALSE(ParseReadyLine(line)) << line;
  }
  EXPECT_TRUE(ParseReadyLine("ready"));
}

TEST(ProcCmdlineTest, SplitsAtNuls) {
  constexpr char kRaw[] = "/bin/phoenix-vmm\0restore\0--control\0/a b/c.sock\0";
  std::string_view raw(kRaw, sizeof kRaw - 1);
  EXPECT_THAT(SplitProcCmdline(raw),
              ElementsAre("/bin/phoenix-vmm", "restore", "--control", "/a b/c.sock"));
  EXPECT_TRUE(SplitProcCmdline("").empty());
}

TEST(ProcCmdlineTest, RecognisesOnlyThisInstancesMonitor) {
  std::vector<std::string> argv = {
      "/usr/bin/phoenix-vmm",     "restore", "--snapshot", "/g", "--control",
      "/s/run/phx-a/control.sock"};
  EXPECT_TRUE(IsMonitorOf(argv, "/s/run/phx-a/control.sock"));
  EXPECT_FALSE(IsMonitorOf(argv, "/s/run/phx-b/control.sock"));
  EXPECT_FALSE(IsMonitorOf({"/bin/sleep", "100"}, "/s/run/phx-a/control.sock"));
  // The socket path as a value of another flag is not a match.
  EXPECT_FALSE(IsMonitorOf({"x", "--console-log", "/s/run/phx-a/control.sock"},
                           "/s/run/phx-a/control.sock"));
  EXPECT_FALSE(IsMonitorOf(argv, ""));
}

TEST(ClassifyMonitorExitTest, Verdicts) {
  auto exited = [](int code) { return code << 8; };
  EXPECT_FALSE(ClassifyMonitorExit(exited(0), false, false, "").crashed);
  EXPECT_EQ(ClassifyMonitorExit(exited(0), false, false, "").reason, "guest shut down");
  EXPECT_FALSE(ClassifyMonitorExit(SIGKILL, true, false, "").crashed);  // our own stop
  auto killed = ClassifyMonitorExit(SIGKILL, false, false, "");
  EXPECT_TRUE(killed.crashed);
  EXPECT_THAT(killed.reason, HasSubstr("SIGKILL"));
  EXPECT_TRUE(ClassifyMonitorExit(SIGKILL, false, true, "").crashed);  // chaos drill
  auto reset = ClassifyMonitorExit(exited(2), false, false, "");
  EXPECT_TRUE(reset.crashed);
  EXPECT_THAT(reset.reason, HasSubstr("reset"));
  auto failed = ClassifyMonitorExit(exited(1), false, false, "phoenix-vmm: KVM_RUN: EFAULT");
  EXPECT_TRUE(failed.crashed);
  EXPECT_THAT(failed.reason, HasSubstr("KVM_RUN: EFAULT"));
  EXPECT_TRUE(ClassifyMonitorExit(std::nullopt, false, false, "").crashed);
}

}  // namespace
}  // namespace phoenix::agent::microvm
