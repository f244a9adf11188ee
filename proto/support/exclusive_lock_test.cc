#include "proto/support/exclusive_lock.h"

#include <gtest/gtest.h>

#include <fstream>

namespace phoenix {
namespace {

TEST(ExclusiveLockTest, ASecondOwnerIsRefusedUntilTheFirstLetsGo) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("phoenix-lock-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "serve.lock";
  {
    auto first = LockExclusively(file, "state dir");
    ASSERT_TRUE(first) << first.error().ToString();
    auto second = LockExclusively(file, "state dir");
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
    EXPECT_EQ(second.error().message, "state dir " + dir.string() +
                                          " is in use by another process (pid " +
                                          std::to_string(::getpid()) + ")");
  }
  EXPECT_TRUE(LockExclusively(file, "state dir")) << "released with its fd";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace phoenix
