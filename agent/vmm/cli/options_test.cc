#include "agent/vmm/cli/options.h"

#include <gtest/gtest.h>

#include <vector>

namespace phoenix::vmm {
namespace {

Result<CliOptions> Parse(std::vector<std::string_view> args) { return ParseCommandLine(args); }

std::string ErrorOf(std::vector<std::string_view> args) {
  auto r = Parse(args);
  return r ? "(accepted)" : r.error().message;
}

TEST(CliOptions, BootWithEveryFlag) {
  auto o = Parse({"boot",
                  "--kernel",
                  "/k",
                  "--initrd=/i",
                  "--cmdline",
                  "console=ttyS0 quiet",
                  "--memory-mib",
                  "256",
                  "--vcpus=2",
                  "--tap-fd",
                  "3",
                  "--mac",
                  "06:00:ac:10:00:09",
                  "--console-log",
                  "/log",
                  "--control",
                  "/s.sock",
                  "--ready-marker",
                  "phoenix-demo ready",
                  "--snapshot-to",
                  "/snap",
                  "--exit-after-snapshot",
                  "--ready-fd",
                  "4"});
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->command, CliCommand::kBoot);
  EXPECT_EQ(o->kernel, "/k");
  EXPECT_EQ(o->initrd, "/i");
  EXPECT_EQ(o->cmdline, "console=ttyS0 quiet");
  EXPECT_EQ(o->memory_mib, 256u);
  EXPECT_EQ(o->vcpus, 2u);
  EXPECT_EQ(o->tap_fd, 3);
  EXPECT_EQ(o->mac, (std::array<uint8_t, 6>{0x06, 0x00, 0xac, 0x10, 0x00, 0x09}));
  EXPECT_EQ(o->console_log, "/log");
  EXPECT_EQ(o->control_socket, "/s.sock");
  EXPECT_EQ(o->ready_marker, "phoenix-demo ready");
  EXPECT_EQ(o->snapshot_to, "/snap");
  EXPECT_TRUE(o->exit_after_snapshot);
  EXPECT_EQ(o->ready_fd, 4);
}

TEST(CliOptions, BootDefaults) {
  auto o = Parse({"boot", "--kernel", "/k"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->memory_mib, 128u);
  EXPECT_EQ(o->vcpus, 1u);
  EXPECT_EQ(o->tap_fd, -1);
  EXPECT_EQ(o->ready_fd, -1);
  EXPECT_EQ(o->mac, (std::array<uint8_t, 6>{0x06, 0x00, 0xac, 0x10, 0x00, 0x02}));
  EXPECT_FALSE(o->exit_after_snapshot);
}

TEST(CliOptions, RestoreAndInspect) {
  auto r = Parse({"restore", "--snapshot", "/g", "--tap-fd", "5", "--console-log", "/l",
                  "--control", "/c", "--ready-fd", "6"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->command, CliCommand::kRestore);
  EXPECT_EQ(r->snapshot, "/g");
  EXPECT_EQ(r->tap_fd, 5);
  EXPECT_EQ(r->ready_fd, 6);
  auto i = Parse({"inspect", "--snapshot=/g"});
  ASSERT_TRUE(i);
  EXPECT_EQ(i->command, CliCommand::kInspect);
  EXPECT_EQ(i->snapshot, "/g");
}

TEST(CliOptions, Help) {
  for (auto args : std::vector<std::vector<std::string_view>>{
           {"--help"}, {"-h"}, {"help"}, {"boot", "--help"}, {"restore", "-h"}}) {
    auto o = Parse(args);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->command, CliCommand::kHelp);
  }
  const std::string usage = UsageText();
  for (const char* needle : {"phoenix-vmm boot", "phoenix-vmm restore", "phoenix-vmm inspect",
                             "--ready-fd", "Examples:", "Exit status", "stats keys"})
    EXPECT_NE(usage.find(needle), std::string::npos) << needle;
}

TEST(CliOptions, Refusals) {
  EXPECT_NE(ErrorOf({}).find("no command"), std::string::npos);
  EXPECT_NE(ErrorOf({"run"}).find("unknown command \"run\""), std::string::npos);
  EXPECT_NE(ErrorOf({"boot"}).find("needs --kernel"), std::string::npos);
  EXPECT_NE(ErrorOf({"restore"}).find("needs --snapshot"), std::string::npos);
  EXPECT_NE(ErrorOf({"inspect"}).find("needs --snapshot"), std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--snapshot-to", "/s"}).find("needs --ready-marker"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf({"boot", "--kernel", "/k", "--exit-after-snapshot"}).find("needs --snapshot-to"),
      std::string::npos);
  EXPECT_NE(ErrorOf({"restore", "--snapshot", "/s", "--kernel", "/k"})
                .find("restore does not take --kernel"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"restore", "--snapshot", "/s", "--mac", "06:00:00:00:00:01"})
                .find("does not take --mac"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"inspect", "--snapshot", "/s", "--ready-fd", "3"}).find("does not take"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel"}).find("needs a value"), std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/a", "--kernel", "/b"}).find("given twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "stray"}).find("unexpected argument"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--memory-mib", "0"}).find("outside 1..3072"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--memory-mib", "4096"}).find("outside"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--memory-mib", "12x"}).find("not a number"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--vcpus", "0"}).find("outside"), std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--tap-fd", "-1"}).find("outside"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--exit-after-snapshot=yes"}).find("takes no value"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"boot", "--kernel", "/k", "--tap-fd", "3", "--ready-fd", "3"}).find("same fd"),
            std::string::npos);
}

TEST(CliOptions, MacAddresses) {
  EXPECT_TRUE(ParseMac("06:00:AC:10:00:02"));
  EXPECT_FALSE(ParseMac("06:00:ac:10:00"));
  EXPECT_FALSE(ParseMac("06-00-ac-10-00-02"));
  EXPECT_FALSE(ParseMac("06:00:ac:10:00:0g"));
  EXPECT_FALSE(ParseMac("06:00:ac:10:00:+2"));
  auto multicast = ParseMac("01:00:5e:00:00:01");
  ASSERT_FALSE(multicast);
  EXPECT_NE(multicast.error().message.find("multicast"), std::string::npos);
}

}  // namespace
}  // namespace phoenix::vmm
