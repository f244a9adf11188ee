#include "agent/net/port_allocator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace phoenix::agent::net {

Result<uint16_t> PickFreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return ErrnoError("socket(AF_INET, SOCK_STREAM)");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("bind 127.0.0.1:0", err);
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("getsockname", err);
  }
  if (::close(fd) != 0) {
    return ErrnoError("close");
  }
  uint16_t port = ntohs(addr.sin_port);
  if (port == 0) {
    return Internal("kernel assigned port 0 to a bound socket");
  }
  return port;
}

}  // namespace phoenix::agent::net
