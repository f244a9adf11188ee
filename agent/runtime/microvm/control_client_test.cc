#include "agent/runtime/microvm/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "agent/runtime/microvm/guest_netns.h"

namespace phoenix::agent::microvm {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

TEST(ParseControlReplyTest, OkWithKeys) {
  auto r = ParseControlReply("ok state=running vcpus=1 monitor_overhead_kib=2100\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->at("state"), "running");
  EXPECT_EQ(r->at("vcpus"), "1");
  EXPECT_EQ(r->at("monitor_overhead_kib"), "2100");
  auto bare = ParseControlReply("ok");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->empty());
}

TEST(ParseControlReplyTest, ErrorsAndGarbage) {
  auto e = ParseControlReply("error not paused");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(e.error().message, "phoenix-vmm: not paused");
  EXPECT_FALSE(ParseControlReply("okay"));
  EXPECT_FALSE(ParseControlReply(""));
}

// A one-shot server on a Unix socket: reads one line, answers `reply` (or nothing).
class OneShotServer {
 public:
  OneShotServer(fs::path path, std::string reply, bool answer = true) : path_(std::move(path)) {
    fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_.get(), 1), 0);
    thread_ = std::thread([this, reply, answer] {
      UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) return;
      char buf[256];
      ssize_t n = ::read(c.get(), buf, sizeof buf);
      if (n > 0) request_.assign(buf, static_cast<size_t>(n));
      if (answer) {
        EXPECT_EQ(::write(c.get(), reply.data(), reply.size()), static_cast<ssize_t>(reply.size()));
      } else {
        std::this_thread::sleep_for(milliseconds(400));
      }
    });
  }
  ~OneShotServer() {
    if (thread_.joinable()) thread_.join();
    ::unlink(path_.c_str());
  }
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  fs::path path_;
  UniqueFd fd_;
  std::thread thread_;
  std::string request_;
};

fs::path SocketPath(const char* name) {
  return fs::temp_directory_path() / (std::string(name) + std::to_string(::getpid()) + ".sock");
}

TEST(ControlCallTest, SendsOneLineAndParsesTheReply) {
  fs::path path = SocketPath("ctl_ok");
  OneShotServer server(path, "ok state=paused uptime_ms=5\n");
  auto r = ControlCall(path, "stats", milliseconds(2000));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->at("state"), "paused");
  EXPECT_EQ(server.request(), "stats\n");
}

TEST(ControlCallTest, ErrorReply) {
  fs::path path = SocketPath("ctl_err");
  OneShotServer server(path, "error no such command\n");
  auto r = ControlCall(path, "frobnicate", milliseconds(2000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "phoenix-vmm: no such command");
}

TEST(ControlCallTest, TimesOutWhenTheMonitorDoesNotAnswer) {
  fs::path path = SocketPath("ctl_slow");
  OneShotServer server(path, "", /*answer=*/false);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = ControlCall(path, "ping", milliseconds(100));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(350));
}

TEST(ControlCallTest, NoSocketIsUnavailable) {
  auto r = ControlCall(SocketPath("ctl_none"), "ping", milliseconds(100));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace phoenix::agent::microvm
