#include "proto/support/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

namespace phoenix {
namespace {

namespace fs = std::filesystem;

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("phx-unix-socket-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    if (listener_ >= 0) ::close(listener_);
    fs::remove_all(dir_);
  }
  // A real listening socket at `path`, as a running server would have.
  void Listen(const fs::path& path) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.native().size());
    ASSERT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listener_, 1), 0);
  }

  fs::path dir_;
  int listener_ = -1;
};

TEST(UnixSocketPathTest, OnlyAbsoluteUnixAddresses) {
  EXPECT_EQ(UnixSocketPath("unix:/run/phoenix/agent.sock"), fs::path("/run/phoenix/agent.sock"));
  EXPECT_EQ(UnixSocketPath("unix:relative.sock"), std::nullopt);
  EXPECT_EQ(UnixSocketPath("unix-abstract:x"), std::nullopt);
  EXPECT_EQ(UnixSocketPath("127.0.0.1:7070"), std::nullopt);
  EXPECT_EQ(UnixSocketPath(kDefaultAgentEndpoint), fs::path("/run/phoenix/agent.sock"));
}

TEST_F(UnixSocketTest, CreatesAPrivateDirectory) {
  ASSERT_TRUE(PrepareUnixSocket(dir_ / "sub" / "agent.sock"));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(UnixSocketTest, RefusesToStealALiveServersSocket) {
  fs::create_directories(dir_);
  Listen(dir_ / "agent.sock");
  auto r = PrepareUnixSocket(dir_ / "agent.sock");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(fs::exists(dir_ / "agent.sock"));
}

TEST_F(UnixSocketTest, RemovesAStaleSocket) {
  fs::create_directories(dir_);
  Listen(dir_ / "agent.sock");
  ::close(listener_);
  listener_ = -1;
  ASSERT_TRUE(PrepareUnixSocket(dir_ / "agent.sock"));
  EXPECT_FALSE(fs::exists(dir_ / "agent.sock"));
}

TEST_F(UnixSocketTest, NeverReplacesARegularFile) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "agent.sock") << "precious";
  auto r = PrepareUnixSocket(dir_ / "agent.sock");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(dir_ / "agent.sock"));
}

TEST_F(UnixSocketTest, RestrictMakesTheSocketOwnerOnly) {
  fs::create_directories(dir_);
  Listen(dir_ / "agent.sock");
  ASSERT_TRUE(RestrictUnixSocket(dir_ / "agent.sock"));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "agent.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(UnixSocketTest, RefusesOverlongPaths) {
  auto r = PrepareUnixSocket(dir_ / std::string(120, 'x'));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "listen");
}

}  // namespace
}  // namespace phoenix
