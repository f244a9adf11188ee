// TestNetns: a fresh network namespace for tests, holding only `lo` (brought up). It lives as long
// as this object keeps an fd on it, and tests name it by path, /proc/<pid>/fd/<fd>, the way a
// runtime names an instance's /proc/<pid>/ns/net. No bind mount: a crashed test leaves nothing
// behind. Needs root (CAP_SYS_ADMIN).
//
// Everything that must happen inside the namespace runs on a short-lived thread of its own, which
// enters the namespace and ends; the calling thread (the test's event loop) never changes
// namespace. Test-only. Create and destroy on one thread.
#pragma once

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include "proto/support/error.h"

namespace phoenix::agent::net::testing {

class TestNetns {
 public:
  // Creates the namespace, with lo up.
  [[nodiscard]] static Result<std::unique_ptr<TestNetns>> Create() {
    int fd = -1;
    Result<void> made = OnThread([&]() -> Result<void> {
      if (::unshare(CLONE_NEWNET) != 0) {
        return ErrnoError("unshare(CLONE_NEWNET)");
      }
      if (Result<void> up = BringLoopbackUp(); !up) {
        return up;
      }
      fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        return ErrnoError("open /proc/thread-self/ns/net");
      }
      return {};
    });
    if (!made) {
      return std::unexpected(made.error());
    }
    return std::unique_ptr<TestNetns>(new TestNetns(fd));
  }

  ~TestNetns() { ::close(fd_); }

  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Runs `fn` on a new thread inside this namespace (for code that works in "its" namespace).
  [[nodiscard]] Result<void> Run(const std::function<void()>& fn) const {
    return InNetns([&]() -> Result<void> {
      fn();
      return {};
    });
  }

  // A TCP socket listening on address:port (default 127.0.0.1) inside the namespace (port 0: the
  // kernel picks). The
  // caller owns the fd (e.g. hands it to tcp::acceptor::assign). With a tiny backlog and nobody
  // accepting, further connects hang (the kernel drops their SYNs): a connect that stays in flight.
  [[nodiscard]] Result<int> Listen(uint16_t port, int backlog = SOMAXCONN,
                                   uint32_t address = INADDR_LOOPBACK) const {
    int listener = -1;
    Result<void> done = InNetns([&]() -> Result<void> {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        return ErrnoError("socket");
      }
      int one = 1;
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      addr.sin_addr.s_addr = htonl(address);
      if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
          ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::listen(fd, backlog) != 0) {
        auto error =
            ErrnoError("listen on 127.0.0.1:" + std::to_string(port) + " in " + path_.string());
        ::close(fd);
        return error;
      }
      listener = fd;
      return {};
    });
    if (!done) {
      return std::unexpected(done.error());
    }
    return listener;
  }

 private:
  explicit TestNetns(int fd)
      : fd_(fd), path_("/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd)) {}

  // Runs `fn` on a new thread inside this namespace.
  Result<void> InNetns(const std::function<Result<void>()>& fn) const {
    return OnThread([&]() -> Result<void> {
      if (::setns(fd_, CLONE_NEWNET) != 0) {
        return ErrnoError("setns " + path_.string());
      }
      return fn();
    });
  }

  // Runs `fn` on a thread of its own, which may change namespaces freely: it ends right after.
  static Result<void> OnThread(const std::function<Result<void>()>& fn) {
    Result<void> result;
    try {
      std::thread thread([&] { result = fn(); });
      thread.join();
    } catch (const std::system_error& e) {
      return Internal(std::string("test netns thread: ") + e.what());
    }
    return result;
  }

  static Result<void> BringLoopbackUp() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return ErrnoError("socket for SIOCSIFFLAGS");
    }
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    Result<void> result;
    if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
      result = ErrnoError("SIOCGIFFLAGS lo");
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
        result = ErrnoError("SIOCSIFFLAGS lo up");
      }
    }
    ::close(fd);
    return result;
  }

  int fd_ = -1;
  std::filesystem::path path_;
};

// A namespace path that does not exist.
inline std::filesystem::path MissingNetnsPath() { return "/nonexistent/phx-netns-test/ns"; }

// For tests that need a real namespace: the reason to skip, or empty when they can run.
inline std::string NetnsSkipReason() {
  if (::geteuid() != 0) {
    return "needs root to create network namespaces (setns needs CAP_SYS_ADMIN)";
  }
  return "";
}

}  // namespace phoenix::agent::net::testing
