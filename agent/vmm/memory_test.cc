#include "agent/vmm/memory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <gtest/gtest.h>

namespace phoenix::vmm {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/vmm-memory-test-XXXXXX";
  char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  return dir;
}

TEST(GuestMemory, RefusesSizesOutsideTheLayout) {
  EXPECT_FALSE(GuestMemory::CreateAnonymous(4096).has_value());           // below 1 MiB
  EXPECT_FALSE(GuestMemory::CreateAnonymous((1 << 20) + 1).has_value());  // not page multiple
  EXPECT_FALSE(GuestMemory::CreateAnonymous(kMaxMemoryBytes + kPageSize).has_value());
  EXPECT_TRUE(GuestMemory::CreateAnonymous(kMaxMemoryBytes).has_value());  // reserved, not touched
}

TEST(GuestMemory, BoundsChecksEveryGuestAddress) {
  auto mem = GuestMemory::CreateAnonymous(2 << 20);
  ASSERT_TRUE(mem) << mem.error().message;
  EXPECT_NE(mem->HostAddress(0, 2 << 20), nullptr);
  EXPECT_EQ(mem->HostAddress(1, 2 << 20), nullptr);
  EXPECT_EQ(mem->HostAddress((2 << 20) - 4, 8), nullptr);
  EXPECT_EQ(mem->HostAddress(UINT64_MAX - 2, 8), nullptr);  // no wrap-around
  uint8_t buf[8] = {};
  auto r = mem->Read((2 << 20) - 4, buf);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("outside guest RAM"), std::string::npos);
  ASSERT_TRUE(mem->WriteObject<uint64_t>(0x1000, 0x1122334455667788ull));
  auto v = mem->ReadObject<uint64_t>(0x1000);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x1122334455667788ull);
}

TEST(GuestMemory, FileRoundTripIsSparseAndPrivate) {
  std::string dir = TempDir();
  std::string path = dir + "/memory.raw";
  constexpr uint64_t kSize = 64 << 20;
  {
    auto mem = GuestMemory::CreateAnonymous(kSize);
    ASSERT_TRUE(mem);
    ASSERT_TRUE(mem->WriteObject<uint32_t>(0x5000, 0xfeedface));
    ASSERT_TRUE(mem->WriteObject<uint32_t>(kSize - 4, 0xcafef00d));
    ASSERT_TRUE(mem->WriteToFile(path)) << path;
  }
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20);  // two touched pages, not 64 MiB

  auto restored = GuestMemory::MapPrivateFile(path, kSize);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(*restored->ReadObject<uint32_t>(0x5000), 0xfeedfaceu);
  EXPECT_EQ(*restored->ReadObject<uint32_t>(kSize - 4), 0xcafef00du);
  auto resident = restored->ResidentBytes();
  ASSERT_TRUE(resident);
  EXPECT_LT(*resident, 4u << 20);  // lazily mapped: only what was read is resident
  ASSERT_TRUE(restored->WriteObject<uint32_t>(0x5000, 1));  // copy-on-write, never reaches the file

  auto again = GuestMemory::MapPrivateFile(path, kSize);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again->ReadObject<uint32_t>(0x5000), 0xfeedfaceu);

  auto wrong = GuestMemory::MapPrivateFile(path, kSize * 2);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("has 67108864 bytes"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// The memory file of a snapshot just written sits in the page cache; only the pages a restored
// guest touched count as resident in the restoring process.
TEST(GuestMemory, ResidentBytesCountsPagesMappedHereNotThePageCache) {
  std::string dir = TempDir();
  std::string path = dir + "/memory.raw";
  constexpr uint64_t kSize = 32 << 20;
  {
    auto mem = GuestMemory::CreateAnonymous(kSize);
    ASSERT_TRUE(mem) << mem.error().message;
    std::memset(mem->HostAddress(0, kSize), 0xab, kSize);
    auto resident = mem->ResidentBytes();
    ASSERT_TRUE(resident) << resident.error().message;
    EXPECT_EQ(*resident, kSize);
    ASSERT_TRUE(mem->WriteToFile(path));
  }
  auto restored = GuestMemory::MapPrivateFile(path, kSize);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(*restored->ReadObject<uint8_t>(0x3000), 0xab);
  auto resident = restored->ResidentBytes();
  ASSERT_TRUE(resident) << resident.error().message;
  // The kernel maps cached neighbours of a faulting page too (fault-around): a few MiB at most.
  EXPECT_LT(*resident, 4u << 20) << "the whole file is cached, but only one page was touched";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace phoenix::vmm
