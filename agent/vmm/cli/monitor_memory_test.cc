#include "agent/vmm/cli/monitor_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace phoenix::vmm {
namespace {

TEST(MonitorMemory, SeparatesTheGuestRamMappingFromTheRest) {
  constexpr uint64_t kSize = 8ull << 20;
  int fd = memfd_create("phoenix-vmm-guest-ram", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kSize), 0);
  void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto before = ReadMonitorMemory(kSize);
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_EQ(before->guest_rss_kib, 0u);
  EXPECT_GT(before->rss_kib, 0u);
  std::memset(p, 1, 4ull << 20);  // the "guest" touches 4 MiB
  auto after = ReadMonitorMemory(kSize);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->guest_rss_kib, 4096u);
  EXPECT_GE(after->rss_kib, before->rss_kib + 4096);
  // The overhead does not move when only guest memory grows (allow some test-process noise).
  EXPECT_LT(after->overhead_kib(), before->overhead_kib() + 512);
  // A mapping of another size is not the guest.
  auto other = ReadMonitorMemory(kSize * 2);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->guest_rss_kib, 0u);
  munmap(p, kSize);
  close(fd);
}

TEST(MonitorMemory, ReportsAnUnreadableFile) {
  auto r = ReadMonitorMemory(1 << 20, "/nonexistent/smaps");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/smaps"), std::string::npos);
}

}  // namespace
}  // namespace phoenix::vmm
