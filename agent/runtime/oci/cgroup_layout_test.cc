#include "agent/runtime/oci/cgroup_layout.h"

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <unistd.h>

#include <fstream>

namespace phoenix::agent::oci {
namespace {

namespace fs = std::filesystem;

TEST(CgroupLayoutTest, Classifies) {
  EXPECT_EQ(ClassifyCgroupLayout(CGROUP2_SUPER_MAGIC, std::nullopt), CgroupLayout::kUnified);
  // A unified host has no "unified" subdirectory, but a stray statfs answer must not matter.
  EXPECT_EQ(ClassifyCgroupLayout(CGROUP2_SUPER_MAGIC, CGROUP2_SUPER_MAGIC), CgroupLayout::kUnified);
  EXPECT_EQ(ClassifyCgroupLayout(TMPFS_MAGIC, std::nullopt), CgroupLayout::kLegacy);
  EXPECT_EQ(ClassifyCgroupLayout(TMPFS_MAGIC, TMPFS_MAGIC), CgroupLayout::kLegacy);
  EXPECT_EQ(ClassifyCgroupLayout(TMPFS_MAGIC, CGROUP2_SUPER_MAGIC), CgroupLayout::kHybrid);
  auto none = ClassifyCgroupLayout(EXT4_SUPER_MAGIC, std::nullopt);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kFailedPrecondition);
}

TEST(CgroupLayoutTest, DetectsThisHost) {
  auto layout = DetectCgroupLayout();
  ASSERT_TRUE(layout.has_value()) << layout.error().message;
  std::error_code ec;
  if (*layout == CgroupLayout::kUnified) {
    EXPECT_TRUE(fs::exists("/sys/fs/cgroup/cgroup.controllers", ec));
  } else {
    EXPECT_FALSE(fs::exists("/sys/fs/cgroup/cgroup.controllers", ec));
    EXPECT_EQ(*layout == CgroupLayout::kHybrid, fs::exists("/sys/fs/cgroup/unified", ec));
  }
}

TEST(CgroupLayoutTest, ParsesOomKillCounters) {
  EXPECT_EQ(ParseOomKillCount("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3u);
  EXPECT_EQ(ParseOomKillCount("low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n"), 1u);
  EXPECT_EQ(ParseOomKillCount("oom_kill_disable 0\nunder_oom 0\n"), std::nullopt);  // old kernel
  EXPECT_EQ(ParseOomKillCount(""), std::nullopt);
}

TEST(CgroupLayoutTest, FindsInstanceDirsInEveryHierarchy) {
  fs::path root = fs::temp_directory_path() / ("cgroup_layout_test." + std::to_string(::getpid()));
  fs::create_directories(root / "memory/phoenix/phx-a");
  fs::create_directories(root / "pids/phoenix/phx-a");
  fs::create_directories(root / "cpu,cpuacct/phoenix/phx-a");
  fs::create_directory_symlink("cpu,cpuacct", root / "cpu");
  fs::create_directories(root / "blkio/phoenix");
  auto dirs = ExistingCgroupDirs(root, "/phoenix/phx-a");
  std::sort(dirs.begin(), dirs.end());
  EXPECT_EQ(dirs,
            (std::vector<fs::path>{root / "cpu,cpuacct/phoenix/phx-a",
                                   root / "memory/phoenix/phx-a", root / "pids/phoenix/phx-a"}));
  EXPECT_TRUE(ExistingCgroupDirs(root, "/").empty());
  std::ofstream(root / "memory/phoenix/phx-a/memory.oom_control") << "under_oom 0\noom_kill 2\n";
  EXPECT_EQ(ReadOomKillCount(CgroupLayout::kLegacy, root, "/phoenix/phx-a"), 2u);
  EXPECT_EQ(ReadOomKillCount(CgroupLayout::kUnified, root, "/phoenix/phx-a"), std::nullopt);
  fs::remove_all(root);
}

}  // namespace
}  // namespace phoenix::agent::oci
