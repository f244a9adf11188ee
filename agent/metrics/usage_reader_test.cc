#include "agent/metrics/usage_reader.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/testing/temp_dir.h"

namespace phoenix::agent::metrics {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(ParseProcStatTest, SumsUtimeAndStimeAfterTheCommandName) {
  // A command name with spaces and a ')' of its own.
  const std::string stat =
      "1234 (qemu (x) sys) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 3 0 500 1000 10";
  EXPECT_EQ(ParseProcStatCpuTicks(stat), 320u);
  EXPECT_FALSE(ParseProcStatCpuTicks("1234 (short) S 1 2").has_value());
  EXPECT_FALSE(ParseProcStatCpuTicks("garbage").has_value());
}

TEST(ParseStatusTest, VmRssInBytes) {
  EXPECT_EQ(ParseStatusRssBytes("Name:\tqemu\nVmPeak:\t 9 kB\nVmRSS:\t   2048 kB\nThreads: 3\n"),
            2048u * 1024);
  EXPECT_FALSE(ParseStatusRssBytes("Name:\tkthread\n").has_value());
}

TEST(ParseCpuStatTest, UsageUsec) {
  EXPECT_EQ(ParseCpuStatUsageUsec("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n"),
            123456u);
  EXPECT_FALSE(ParseCpuStatUsageUsec("user_usec 1\n").has_value());
}

TEST(ParseProcCgroupTest, V1AndUnifiedLines) {
  CgroupPaths hybrid = ParseProcCgroup(
      "12:memory:/phoenix/phx-web-1\n4:cpu,cpuacct:/phoenix/phx-web-1\n1:name=systemd:/x\n"
      "0::/agent\n");
  ASSERT_TRUE(hybrid.cpuacct_v1.has_value());
  EXPECT_EQ(hybrid.cpuacct_v1->first, "cpu,cpuacct");
  EXPECT_EQ(hybrid.cpuacct_v1->second, "/phoenix/phx-web-1");
  ASSERT_TRUE(hybrid.memory_v1.has_value());
  EXPECT_EQ(hybrid.memory_v1->second, "/phoenix/phx-web-1");
  EXPECT_EQ(hybrid.unified, "/agent");

  CgroupPaths v2 = ParseProcCgroup("0::/phoenix/phx-web-2\n");
  EXPECT_FALSE(v2.cpuacct_v1.has_value());
  EXPECT_EQ(v2.unified, "/phoenix/phx-web-2");
}

class ProcUsageReaderTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  fs::path proc_ = dir_.path() / "proc";
  fs::path cgroup_ = dir_.path() / "cgroup";
};

TEST_F(ProcUsageReaderTest, ProcessCpuAndRss) {
  Write(proc_ / "77/stat", "77 (qemu) S 1 77 77 0 -1 0 0 0 0 0 300 100 0 0 20 0 1 0 1 1 1");
  Write(proc_ / "77/status", "VmRSS:\t1000 kB\n");
  ProcUsageReader reader(proc_, cgroup_);
  auto usage = reader.Read({UsageSource::Kind::kProcess, 77});
  ASSERT_TRUE(usage.has_value()) << usage.error().ToString();
  const uint64_t tick_ns = 1'000'000'000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  EXPECT_EQ(usage->cpu_ns, 400 * tick_ns);
  EXPECT_EQ(usage->memory_bytes, 1000u * 1024);
}

TEST_F(ProcUsageReaderTest, V1CgroupMountedPerController) {
  Write(proc_ / "5/cgroup", "4:memory:/phoenix/phx-a-1\n2:cpuacct:/phoenix/phx-a-1\n0::/\n");
  Write(cgroup_ / "cpuacct/phoenix/phx-a-1/cpuacct.usage", "987654321\n");
  Write(cgroup_ / "memory/phoenix/phx-a-1/memory.usage_in_bytes", "4096\n");
  ProcUsageReader reader(proc_, cgroup_);
  auto usage = reader.Read({UsageSource::Kind::kCgroup, 5});
  ASSERT_TRUE(usage.has_value()) << usage.error().ToString();
  EXPECT_EQ(usage->cpu_ns, 987654321u);
  EXPECT_EQ(usage->memory_bytes, 4096u);
}

TEST_F(ProcUsageReaderTest, V1CgroupMountedUnderTheControllerList) {
  Write(proc_ / "5/cgroup", "3:cpu,cpuacct:/phoenix/phx-a-1\n");
  Write(cgroup_ / "cpu,cpuacct/phoenix/phx-a-1/cpuacct.usage", "42\n");
  ProcUsageReader reader(proc_, cgroup_);
  auto usage = reader.Read({UsageSource::Kind::kCgroup, 5});
  ASSERT_TRUE(usage.has_value()) << usage.error().ToString();
  EXPECT_EQ(usage->cpu_ns, 42u);
  EXPECT_FALSE(usage->memory_bytes.has_value());
}

TEST_F(ProcUsageReaderTest, UnifiedCgroup) {
  Write(proc_ / "6/cgroup", "0::/phoenix/phx-b-2\n");
  Write(cgroup_ / "phoenix/phx-b-2/cpu.stat", "usage_usec 1500\nuser_usec 1000\n");
  Write(cgroup_ / "phoenix/phx-b-2/memory.current", "8192\n");
  ProcUsageReader reader(proc_, cgroup_);
  auto usage = reader.Read({UsageSource::Kind::kCgroup, 6});
  ASSERT_TRUE(usage.has_value()) << usage.error().ToString();
  EXPECT_EQ(usage->cpu_ns, 1'500'000u);
  EXPECT_EQ(usage->memory_bytes, 8192u);
}

TEST_F(ProcUsageReaderTest, GoneProcessIsNotFound) {
  ProcUsageReader reader(proc_, cgroup_);
  auto usage = reader.Read({UsageSource::Kind::kProcess, 99});
  ASSERT_FALSE(usage.has_value());
  EXPECT_EQ(usage.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(reader.Read({UsageSource::Kind::kCgroup, 0}).error().code, ErrorCode::kNotFound);
}

TEST(ProcUsageReaderRealTest, ReadsThisProcessAndItsCgroup) {
  ProcUsageReader reader;
  // Burn a little CPU so the counter is not zero.
  volatile uint64_t x = 0;
  for (int i = 0; i < 20'000'000; ++i) x = x + static_cast<uint64_t>(i);
  auto self = reader.Read({UsageSource::Kind::kProcess, ::getpid()});
  ASSERT_TRUE(self.has_value()) << self.error().ToString();
  EXPECT_GT(self->memory_bytes.value_or(0), 0u);
  auto cg = reader.Read({UsageSource::Kind::kCgroup, ::getpid()});
  ASSERT_TRUE(cg.has_value()) << cg.error().ToString();
  EXPECT_GT(cg->cpu_ns, 0u);
}

}  // namespace
}  // namespace phoenix::agent::metrics
