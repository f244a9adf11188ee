#include "agent/net/port_allocator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace phoenix::agent::net {
namespace {

TEST(PortAllocatorTest, ReturnsAPortThatCanBeBound) {
  Result<uint16_t> port = PickFreeLoopbackPort();
  ASSERT_TRUE(port.has_value()) << port.error().ToString();
  EXPECT_NE(*port, 0);

  // The port is free right after the call (the documented race is with other processes only).
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(*port);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0)
      << "errno " << errno;
  EXPECT_EQ(::close(fd), 0);
}

}  // namespace
}  // namespace phoenix::agent::net
