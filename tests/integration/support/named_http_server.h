// Test support: a tiny HTTP server on 127.0.0.1 that answers every request with its name (HTTP/1.0,
// one request per connection), standing for a replica behind the front door; who answers a series
// of requests; and a free loopback port. Test code only.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>

#include "proto/support/error.h"
#include "tests/integration/support/http.h"

namespace phoenix::testing {

// A loopback port nobody listens on right now (the kernel's pick, released again).
inline uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  PHX_CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  PHX_CHECK(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Who answers n GETs of / on 127.0.0.1:port: name -> count (the body of a 200, else the status, or
// "error: ..." when no answer came).
inline std::map<std::string, int> WhoAnswers(uint16_t port, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    auto r = HttpGet(port, "/", std::chrono::seconds(5));
    if (!r) {
      ++seen["error: " + r.error().message];
    } else {
      ++seen[r->status == 200 ? r->body : std::to_string(r->status)];
    }
  }
  return seen;
}

class NamedHttpServer {
 public:
  explicit NamedHttpServer(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    PHX_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    PHX_CHECK(::listen(fd_, 128) == 0);
    socklen_t len = sizeof(addr);
    PHX_CHECK(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          return;  // shutdown() in the destructor
        }
        char buf[2048];
        // A health check connects and closes without a request: answer nothing then.
        if (::recv(c, buf, sizeof(buf), 0) > 0) {
          const std::string reply =
              "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(name_.size()) + "\r\n\r\n" +
              name_;
          (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        }
        ::close(c);
      }
    });
  }
  ~NamedHttpServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  NamedHttpServer(const NamedHttpServer&) = delete;
  NamedHttpServer& operator=(const NamedHttpServer&) = delete;
  uint16_t port() const { return port_; }

 private:
  std::string name_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace phoenix::testing
