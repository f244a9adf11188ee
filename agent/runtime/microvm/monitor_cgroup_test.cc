#include "agent/runtime/microvm/monitor_cgroup.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace phoenix::agent::microvm {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(MonitorCgroup, OneDirectoryOnV2AndOnePerLimitingHierarchyOnV1) {
  EXPECT_EQ(MonitorCgroupDirs(oci::CgroupLayout::kUnified, "/sys/fs/cgroup", "web-1"),
            std::vector<fs::path>{"/sys/fs/cgroup/phoenix/vmm-web-1"});
  const std::vector<fs::path> v1 = {"/sys/fs/cgroup/memory/phoenix/vmm-web-1",
                                    "/sys/fs/cgroup/pids/phoenix/vmm-web-1"};
  EXPECT_EQ(MonitorCgroupDirs(oci::CgroupLayout::kLegacy, "/sys/fs/cgroup", "web-1"), v1);
  EXPECT_EQ(MonitorCgroupDirs(oci::CgroupLayout::kHybrid, "/sys/fs/cgroup", "web-1"), v1);
}

TEST(MonitorCgroup, LimitsLeaveRoomForTheMonitorOnly) {
  const MonitorLimits l = LimitsFor(256, 2);
  EXPECT_EQ(l.memory_bytes, (256ull + 128) << 20);
  EXPECT_EQ(l.pids, 10u);
}

TEST(MonitorCgroup, AFailedCreateNamesTheFileAndLeavesNothing) {
  const fs::path root = fs::temp_directory_path() / ("cg-test-" + std::to_string(::getpid()));
  fs::create_directories(root / "memory");
  fs::create_directories(root / "pids");
  auto r = CreateMonitorCgroup(oci::CgroupLayout::kLegacy, root, "web-1", LimitsFor(64, 1));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("memory.limit_in_bytes"), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(fs::exists(root / "memory" / "phoenix" / "vmm-web-1"));
  fs::remove_all(root);
}

// On this host's real cgroups, when it has them and we may write them.
TEST(MonitorCgroup, CreatesLimitsAndRemovesOnTheHost) {
  auto layout = oci::DetectCgroupLayout();
  if (!layout || ::geteuid() != 0) GTEST_SKIP() << "needs root and mounted cgroups";
  const std::string name = "test-" + std::to_string(::getpid());
  auto dirs = CreateMonitorCgroup(*layout, "/sys/fs/cgroup", name, LimitsFor(64, 1));
  ASSERT_TRUE(dirs) << dirs.error().message;
  ASSERT_FALSE(dirs->empty());
  if (*layout == oci::CgroupLayout::kUnified) {
    EXPECT_EQ(Slurp(dirs->at(0) / "memory.max"), std::to_string(192ull << 20) + "\n");
    EXPECT_EQ(Slurp(dirs->at(0) / "pids.max"), "9\n");
  } else {
    EXPECT_EQ(Slurp(dirs->at(0) / "memory.limit_in_bytes"), std::to_string(192ull << 20) + "\n");
    EXPECT_EQ(Slurp(dirs->at(1) / "pids.max"), "9\n");
  }
  EXPECT_TRUE(RemoveMonitorCgroup(*layout, "/sys/fs/cgroup", name).empty());
  for (const fs::path& dir : *dirs) EXPECT_FALSE(fs::exists(dir)) << dir;
}

}  // namespace
}  // namespace phoenix::agent::microvm
