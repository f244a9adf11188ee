#include "agent/runtime/golden_seal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace phoenix::agent {
namespace {

namespace fs = std::filesystem;

class GoldenSealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("golden-seal-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    dir_ = root_ / "key";
    fs::create_directories(dir_);
    Write("memory", std::string(1 << 20, 'm'));
    Write("state", "state bytes");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << content;
  }
  // Overwrites bytes in the middle without changing the size, as a disk error would.
  void Corrupt(const std::string& name, std::streamoff offset) {
    std::fstream f(dir_ / name, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(offset);
    f << "XXXX";
  }

  fs::path root_, dir_;
};

TEST_F(GoldenSealTest, SealedSnapshotVerifies) {
  ASSERT_TRUE(SealGolden(dir_, {"memory", "state"}).has_value());
  auto r = VerifyGoldenSeal(dir_);
  EXPECT_TRUE(r.has_value()) << r.error().message;
}

TEST_F(GoldenSealTest, EveryKindOfDamageIsNamed) {
  ASSERT_TRUE(SealGolden(dir_, {"memory", "state"}).has_value());
  struct Case {
    std::string what;
    std::function<void()> damage;
    std::string expected;
  } cases[] = {
      {"overwritten bytes", [&] { Corrupt("memory", 4096); }, "memory has sha256"},
      {"truncated", [&] { fs::resize_file(dir_ / "memory", 4096); }, "has 4096 bytes, sealed with"},
      {"deleted", [&] { fs::remove(dir_ / "state"); }, "state is missing"},
      {"replaced by a link",
       [&] {
         fs::remove(dir_ / "state");
         fs::create_symlink("/etc/passwd", dir_ / "state");
       },
       "state is missing or not a regular file"},
      {"no seal", [&] { fs::remove(dir_ / kGoldenSealFile); }, "unsealed snapshot"},
      {"foreign seal", [&] { Write(kGoldenSealFile, "something else\n"); }, "is not a golden seal"},
      {"path in the seal",
       [&] { Write(kGoldenSealFile, "phoenix-golden-seal-v1\nsha256 00 1 ../../etc/shadow\n"); },
       "malformed line"},
      {"empty seal", [&] { Write(kGoldenSealFile, "phoenix-golden-seal-v1\n"); }, "seals no file"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    SetUp();
    ASSERT_TRUE(SealGolden(dir_, {"memory", "state"}).has_value());
    c.damage();
    auto r = VerifyGoldenSeal(dir_);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
    EXPECT_NE(r.error().message.find(c.expected), std::string::npos) << r.error().message;
  }
}

TEST_F(GoldenSealTest, SealRefusesNamesOutsideTheDirectory) {
  EXPECT_FALSE(SealGolden(dir_, {"../memory"}).has_value());
  EXPECT_FALSE(SealGolden(dir_, {}).has_value());
  EXPECT_FALSE(SealGolden(dir_, {"absent"}).has_value());
}

TEST_F(GoldenSealTest, VerifiesOncePerDirectoryUntilSetAside) {
  ASSERT_TRUE(SealGolden(dir_, {"memory", "state"}).has_value());
  GoldenVerifier verifier;
  auto first = verifier.VerifyOnce(dir_);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  // Damage after the first use is not looked for again: the hot path stays free of hashing.
  Corrupt("memory", 0);
  EXPECT_TRUE(verifier.VerifyOnce(dir_).has_value());

  // A restore failed: the snapshot goes aside, replacing an older bad one.
  fs::create_directories(root_ / ".bad-key" / "old");
  auto aside = verifier.SetAside(dir_, *first);
  ASSERT_TRUE(aside.has_value()) << aside.error().message;
  EXPECT_EQ(*aside, root_ / ".bad-key");
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_TRUE(fs::exists(root_ / ".bad-key" / "memory"));
  EXPECT_FALSE(fs::exists(root_ / ".bad-key" / "old"));

  // A second start that saw the same failure finds it gone and moves nothing.
  auto again = verifier.SetAside(dir_, *first);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->empty());

  // The rebuilt snapshot at the same path is verified afresh (and this copy is damaged).
  fs::create_directories(dir_);
  Write("memory", "rebuilt");
  ASSERT_TRUE(SealGolden(dir_, {"memory"}).has_value());
  Corrupt("memory", 0);
  EXPECT_FALSE(verifier.VerifyOnce(dir_).has_value());
}

TEST_F(GoldenSealTest, SetAsideLeavesAReplacementAlone) {
  ASSERT_TRUE(SealGolden(dir_, {"memory"}).has_value());
  GoldenVerifier verifier;
  auto old_identity = verifier.VerifyOnce(dir_);
  ASSERT_TRUE(old_identity.has_value());
  // Another start set it aside and the agent rebuilt it before this start's failure came back.
  fs::rename(dir_, root_ / "elsewhere");
  fs::create_directories(dir_);
  auto aside = verifier.SetAside(dir_, *old_identity);
  ASSERT_TRUE(aside.has_value());
  EXPECT_TRUE(aside->empty());
  EXPECT_TRUE(fs::exists(dir_));
}

}  // namespace
}  // namespace phoenix::agent
