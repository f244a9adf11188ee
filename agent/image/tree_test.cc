#include "agent/image/tree.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "agent/testing/temp_dir.h"

namespace phoenix::agent::image_fs {
namespace {

namespace fs = std::filesystem;
using ::phoenix::agent::testing::TempDir;

TEST(OpenBeneathTest, RefusesEveryWayOut) {
  TempDir tmp;
  fs::create_directories(tmp.path() / "img" / "sub");
  std::ofstream(tmp.path() / "img" / "sub" / "kernel") << "k";
  std::ofstream(tmp.path() / "secret") << "s";
  fs::create_symlink(tmp.path() / "secret", tmp.path() / "img" / "abs-link");
  fs::create_symlink("sub/kernel", tmp.path() / "img" / "rel-link");
  fs::create_directory_symlink(tmp.path(), tmp.path() / "img" / "dir-link");
  UniqueFd dir(::open((tmp.path() / "img").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_GE(dir.get(), 0);

  EXPECT_TRUE(OpenBeneath(dir.get(), "sub/kernel", O_RDONLY));
  for (const char* escape :
       {"abs-link", "rel-link", "dir-link/secret", "../secret", "sub/../../secret"}) {
    auto r = OpenBeneath(dir.get(), escape, O_RDONLY);
    ASSERT_FALSE(r) << escape;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << escape;
    EXPECT_EQ(r.error().field, escape);
  }
  auto absolute = OpenBeneath(dir.get(), tmp.path() / "secret", O_RDONLY);
  EXPECT_FALSE(absolute);
}

TEST(StoredModeTest, DropsSetuidAndSetgidFromFilesOnly) {
  EXPECT_EQ(StoredMode(S_IFREG | 04755), 0755u);
  EXPECT_EQ(StoredMode(S_IFREG | 02755), 0755u);
  EXPECT_EQ(StoredMode(S_IFREG | 0640), 0640u);
  EXPECT_EQ(StoredMode(S_IFDIR | 01777), 01777u);
  EXPECT_EQ(StoredMode(S_IFDIR | 02775), 02775u);
}

TEST(CopyTreeTest, CopiesWithoutSetuidAndKeepsLinksAsLinks) {
  TempDir tmp;
  const fs::path src = tmp.path() / "src";
  fs::create_directories(src / "bin");
  std::ofstream(src / "bin" / "su") << "#!/bin/sh\n";
  ASSERT_EQ(::chmod((src / "bin" / "su").c_str(), 04755), 0);
  fs::create_symlink("/etc/shadow", src / "shadow-link");
  auto entries = ListTree(src);
  ASSERT_TRUE(entries) << entries.error().ToString();
  const fs::path dst = tmp.path() / "dst";
  ASSERT_EQ(::mkdir(dst.c_str(), 0700), 0);
  ASSERT_TRUE(CopyTree(src, dst, *entries));
  struct stat st {};
  ASSERT_EQ(::stat((dst / "bin" / "su").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_TRUE(fs::is_symlink(dst / "shadow-link"));
  EXPECT_EQ(fs::read_symlink(dst / "shadow-link"), "/etc/shadow");
  // The tree hash is over what is stored, so the copy verifies against its source.
  EXPECT_EQ(*HashTree(src), *HashTree(dst));
}

}  // namespace
}  // namespace phoenix::agent::image_fs
