// Test support: a listening TCP socket on an IPv4 address (port picked by the kernel), standing for
// a host service a guest must not reach. Test code only; closes on destruction.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

#include "proto/support/error.h"

namespace phoenix::testing {

class TcpListener {
 public:
  explicit TcpListener(const char* ip) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    PHX_CHECK(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    PHX_CHECK(inet_pton(AF_INET, ip, &addr.sin_addr) == 1);
    PHX_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    PHX_CHECK(::listen(fd_, 16) == 0);
    socklen_t len = sizeof(addr);
    PHX_CHECK(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~TcpListener() { ::close(fd_); }
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace phoenix::testing
