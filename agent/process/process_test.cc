#include "agent/process/process.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace phoenix::agent {
namespace {

TEST(RunCommandTest, ChildrenGetOnlyStdinStdoutAndStderr) {
  // A descriptor opened without O_CLOEXEC, as Boost.Asio opens its sockets.
  const int leaky = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(leaky, 3);
  ASSERT_EQ(::fcntl(leaky, F_GETFD) & FD_CLOEXEC, 0);
  auto r = RunCommand({"ls", "/proc/self/fd"});
  ::close(leaky);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_TRUE(r->ok()) << r->Describe();
  // ls itself opens one descriptor to read the directory (3).
  EXPECT_EQ(r->out, "0\n1\n2\n3\n");
}

}  // namespace
}  // namespace phoenix::agent
