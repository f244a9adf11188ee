#include "agent/runtime/console_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace phoenix::agent {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class ConsoleLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("phx-console-log-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "g1");
    fs::create_directories(dir_ / "g2");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ConsoleLogTest, ReadTailReadsOnlyTheEnd) {
  std::ofstream(dir_ / "g1" / "console.log") << std::string(100000, 'x') << "the end\n\n";
  EXPECT_EQ(ReadTail(dir_ / "g1" / "console.log", 7), "the end");
  EXPECT_EQ(ReadTail(dir_ / "g1" / "console.log", 9), "xxthe end");
  EXPECT_EQ(ReadTail(dir_ / "missing", 9), "");
}

TEST_F(ConsoleLogTest, RotationKeepsTheLastCapBytesAndWritersAppendAtTheNewEnd) {
  const fs::path log = dir_ / "g1" / "console.log";
  // A writer like QEMU or crun: one O_APPEND descriptor held across the rotation.
  int writer = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  ASSERT_GE(writer, 0);
  std::string first = std::string(1000, 'a') + std::string(24, 'b');
  ASSERT_EQ(::write(writer, first.data(), first.size()), static_cast<ssize_t>(first.size()));

  auto small = RotateIfLarger(log, 4096);
  ASSERT_TRUE(small);
  EXPECT_FALSE(*small);

  auto rotated = RotateIfLarger(log, 24);
  ASSERT_TRUE(rotated) << rotated.error().ToString();
  EXPECT_TRUE(*rotated);
  EXPECT_EQ(Slurp(dir_ / "g1" / "console.log.1"), std::string(24, 'b'));
  EXPECT_EQ(fs::file_size(log), 0u);

  ASSERT_EQ(::write(writer, "next", 4), 4);
  ::close(writer);
  EXPECT_EQ(Slurp(log), "next") << "an O_APPEND writer continues at the truncated end";
}

TEST_F(ConsoleLogTest, RotatorBoundsEveryGuestsLog) {
  std::ofstream(dir_ / "g1" / "console.log") << std::string(5000, 'x');
  std::ofstream(dir_ / "g2" / "console.log") << "short";
  boost::asio::io_context loop;
  boost::asio::thread_pool pool(1);
  ConsoleLogRotator rotator(loop, pool, {.guests_dir = dir_, .max_bytes = 1024});
  EXPECT_EQ(rotator.RotateAll(), 1);
  EXPECT_EQ(fs::file_size(dir_ / "g1" / "console.log"), 0u);
  EXPECT_EQ(fs::file_size(dir_ / "g1" / "console.log.1"), 1024u);
  EXPECT_EQ(Slurp(dir_ / "g2" / "console.log"), "short");
  pool.join();
}

TEST_F(ConsoleLogTest, RotationNeverFollowsALinkAGuestCouldPlant) {
  std::ofstream(dir_ / "precious") << std::string(5000, 'p');
  fs::create_symlink(dir_ / "precious", dir_ / "g1" / "console.log");
  auto r = RotateIfLarger(dir_ / "g1" / "console.log", 10);
  EXPECT_FALSE(r);
  EXPECT_EQ(fs::file_size(dir_ / "precious"), 5000u);
}

}  // namespace
}  // namespace phoenix::agent
