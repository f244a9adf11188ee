#include "agent/vmm/cli/control.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

namespace phoenix::vmm {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "vmm-ctl-XXXXXX").string();
    path_ = ::mkdtemp(templ.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int RawConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF or `max_wait`; returns what arrived.
std::string ReadUntilClosed(int fd, std::chrono::milliseconds max_wait, bool* closed) {
  std::string in;
  *closed = false;
  const auto until = std::chrono::steady_clock::now() + max_wait;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

// Runs a server's Poll loop on a thread, as phoenix-vmm's main loop does.
class ServerThread {
 public:
  ServerThread(std::unique_ptr<ControlServer> server, ControlServer::Handler handler)
      : server_(std::move(server)), handler_(std::move(handler)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        auto r = server_->Poll(20ms, {}, handler_);
        if (!r) ADD_FAILURE() << r.error().message;
      }
    });
  }
  ~ServerThread() {
    stop_ = true;
    thread_.join();
  }
  ControlServer& server() { return *server_; }

 private:
  std::unique_ptr<ControlServer> server_;
  ControlServer::Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string Echo(std::string_view request) {
  if (request == "ping") return OkReply();
  if (request == "stats") return OkReply({{"state", "running"}, {"vcpus", "2"}});
  if (request.starts_with("fail")) return ErrorReply("it failed\nbadly");
  return ErrorReply("unknown request " + std::string(request));
}

TEST(ControlReply, FormatsAndParses) {
  EXPECT_EQ(OkReply(), "ok");
  EXPECT_EQ(OkReply({{"b", "2"}, {"a", "1"}}), "ok a=1 b=2");
  EXPECT_EQ(ErrorReply("x\ny"), "error x y");
  auto ok = ParseReply("ok a=1 b=two  c=");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ(ok->at("b"), "two");
  EXPECT_EQ(ok->at("c"), "");
  EXPECT_TRUE(ParseReply("ok"));
  auto err = ParseReply("error no such thing");
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().message, "no such thing");
  EXPECT_FALSE(ParseReply("okay"));
  EXPECT_FALSE(ParseReply("ok novalue"));
  EXPECT_FALSE(ParseReply("ok =x"));
  EXPECT_NE(ParseReply("").error().message.find("malformed"), std::string::npos);
}

TEST(ControlServer, AnswersRequestsOverARealSocket) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  auto server = ControlServer::Listen(path);
  ASSERT_TRUE(server) << server.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ServerThread t(std::move(*server), Echo);
  auto ping = ControlCall(path, "ping", 2s);
  ASSERT_TRUE(ping) << ping.error().message;
  EXPECT_TRUE(ping->empty());
  auto stats = ControlCall(path, "stats", 2s);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(stats->at("vcpus"), "2");
  auto fail = ControlCall(path, "fail now", 2s);
  ASSERT_FALSE(fail);
  EXPECT_EQ(fail.error().message, "it failed badly");
  EXPECT_FALSE(ControlCall(path, "two\nlines", 2s));
}

TEST(ControlServer, ServesSeveralLinesOnOneConnectionAndStripsCr) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  auto server = ControlServer::Listen(path);
  ASSERT_TRUE(server);
  ServerThread t(std::move(*server), Echo);
  int fd = RawConnect(path);
  ASSERT_GE(fd, 0);
  const std::string req = "ping\r\nstats\nbogus\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  ::shutdown(fd, SHUT_WR);
  bool closed = false;
  const std::string got = ReadUntilClosed(fd, 2s, &closed);
  ::close(fd);
  EXPECT_EQ(got, "ok\nok state=running vcpus=2\nerror unknown request bogus\n");
  EXPECT_TRUE(closed);
}

TEST(ControlServer, OversizeLineIsAnsweredWithAnErrorAndClosed) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  auto server = ControlServer::Listen(path);
  ASSERT_TRUE(server);
  std::atomic<int> calls{0};
  ServerThread t(std::move(*server), [&](std::string_view r) {
    ++calls;
    return Echo(r);
  });
  int fd = RawConnect(path);
  ASSERT_GE(fd, 0);
  const std::string big(kMaxRequestBytes + 100, 'a');
  ASSERT_EQ(::send(fd, big.data(), big.size(), MSG_NOSIGNAL), static_cast<ssize_t>(big.size()));
  bool closed = false;
  const std::string got = ReadUntilClosed(fd, 2s, &closed);
  ::close(fd);
  EXPECT_EQ(got, "error request line longer than 4096 bytes\n");
  EXPECT_TRUE(closed);
  EXPECT_EQ(calls, 0);
  // The server is still fine afterwards.
  EXPECT_TRUE(ControlCall(path, "ping", 2s));
}

TEST(ControlServer, SilentClientIsDroppedAfterItsTimeout) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  auto server = ControlServer::Listen(path, 300ms);
  ASSERT_TRUE(server);
  ServerThread t(std::move(*server), Echo);
  int fd = RawConnect(path);
  ASSERT_GE(fd, 0);
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  const std::string got = ReadUntilClosed(fd, 3s, &closed);
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got, "");
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 2s);
  // Others are served while a client dawdles.
  int idle = RawConnect(path);
  ASSERT_GE(idle, 0);
  EXPECT_TRUE(ControlCall(path, "ping", 1s));
  ::close(idle);
}

TEST(ControlServer, TooManyClientsAreTurnedAway) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  auto server = ControlServer::Listen(path);
  ASSERT_TRUE(server);
  ServerThread t(std::move(*server), Echo);
  std::vector<int> idle;
  for (size_t i = 0; i < kMaxControlClients; ++i) {
    idle.push_back(RawConnect(path));
    ASSERT_GE(idle.back(), 0);
  }
  // Wait until the server has accepted them all.
  for (int i = 0; i < 100 && t.server().client_count() < kMaxControlClients; ++i)
    std::this_thread::sleep_for(10ms);
  auto r = ControlCall(path, "ping", 2s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "too many control connections");
  for (int fd : idle) ::close(fd);
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    served = ControlCall(path, "ping", 1s).has_value();
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
}

TEST(ControlServer, ReturnsReadableWakeFds) {
  TempDir dir;
  auto server = ControlServer::Listen(dir.path() + "/vm.sock");
  ASSERT_TRUE(server);
  int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(wake, 0);
  const int fds[] = {wake};
  auto none = (*server)->Poll(30ms, fds, Echo);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  const uint64_t one = 1;
  ASSERT_EQ(::write(wake, &one, sizeof one), 8);
  const auto start = std::chrono::steady_clock::now();
  auto some = (*server)->Poll(5s, fds, Echo);
  ASSERT_TRUE(some);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  ASSERT_EQ(some->size(), 1u);
  EXPECT_EQ(some->at(0), wake);
  ::close(wake);
}

TEST(ControlServer, ReplacesAStaleSocketButNotALiveOne) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  {
    // A socket file left behind by a monitor that died.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  auto first = ControlServer::Listen(path);
  ASSERT_TRUE(first) << first.error().message;
  auto second = ControlServer::Listen(path);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  first->reset();
  EXPECT_FALSE(std::filesystem::exists(path));  // unlinked on destruction

  const std::string file = dir.path() + "/plain";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    std::fclose(f);
  }
  auto refused = ControlServer::Listen(file);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not a socket"), std::string::npos);
  EXPECT_FALSE(ControlServer::Listen(dir.path() + "/" + std::string(200, 'x')));
}

TEST(ControlCall, TimesOutWhenNobodyAnswers) {
  TempDir dir;
  const std::string path = dir.path() + "/vm.sock";
  // Listening but never accepting: connect succeeds through the backlog, no reply ever comes.
  auto server = ControlServer::Listen(path);
  ASSERT_TRUE(server);
  const auto start = std::chrono::steady_clock::now();
  auto r = ControlCall(path, "ping", 300ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno, ETIMEDOUT);
  EXPECT_NE(r.error().message.find("no reply to \"ping\" within 300 ms"), std::string::npos)
      << r.error().message;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 2s);
}

TEST(ControlCall, ReportsAMissingSocketAndAMalformedReply) {
  TempDir dir;
  auto r = ControlCall(dir.path() + "/none.sock", "ping", 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno, ENOENT);
  EXPECT_NE(r.error().message.find(dir.path() + "/none.sock"), std::string::npos);

  const std::string path = dir.path() + "/vm.sock";
  auto server = ControlServer::Listen(path);
  ASSERT_TRUE(server);
  // A peer that answers something that is not the protocol.
  std::atomic<bool> done{false};
  std::thread closer([&] {
    for (int i = 0; i < 250 && !done; ++i) {
      auto p = (*server)->Poll(20ms, {}, [](std::string_view) { return std::string("garbage"); });
      (void)p;
    }
  });
  auto bad = ControlCall(path, "ping", 2s);
  done = true;
  closer.join();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("malformed control reply \"garbage\""), std::string::npos)
      << bad.error().message;
}

}  // namespace
}  // namespace phoenix::vmm
