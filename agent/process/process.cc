#include "agent/process/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

extern char** environ;

namespace phoenix::agent {

namespace {

constexpr size_t kMaxCapture = 64 * 1024;
using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  ~Fd() { Close(); }
  void Close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace

bool CommandResult::ok() const { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }

std::string CommandResult::Describe() const {
  std::string text = err.empty() ? out : err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? DescribeWaitStatus(wait_status)
                      : DescribeWaitStatus(wait_status) + ": " + text;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const char* abbrev = sigabbrev_np(WTERMSIG(wait_status));
    return fmt::format("killed by signal {} (SIG{})", WTERMSIG(wait_status),
                       abbrev != nullptr ? abbrev : "?");
  }
  return fmt::format("wait status {:#x}", wait_status);
}

std::optional<std::string> FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";
  std::stringstream ss(dirs);
  for (std::string dir; std::getline(ss, dir, ':');) {
    if (dir.empty()) continue;
    std::string full = dir + "/" + name;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return std::nullopt;
}

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

std::optional<int> ZombieWaitStatus(pid_t pid, int pidfd) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // Fields after the parenthesised comm (which may hold spaces): state is field 3, exit_code 52.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(stat.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string x; in >> x;) fields.push_back(x);
  // fields[0] is field 3 (state); exit_code is field 52 -> fields[49].
  if (fields.size() < 50 || fields[0] != "Z") return std::nullopt;
  int status = 0;
  const std::string& code = fields[49];
  auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
  if (ec != std::errc() || end != code.data() + code.size()) return std::nullopt;
  if (PidfdSendSignal(pidfd, 0) != 0) return std::nullopt;  // reaped: the pid may be someone else's
  return status;
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const CommandOptions& options) {
  PHX_CHECK(!argv.empty());
  Fd out_r, out_w, err_r, err_w;
  const bool capture = options.output_fd < 0;
  if (capture) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError("pipe for " + argv[0]);
    out_r.fd = p[0];
    out_w.fd = p[1];
    if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoError("pipe for " + argv[0]);
    err_r.fd = p[0];
    err_w.fd = p[1];
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, capture ? out_w.fd : options.output_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, capture ? err_w.fd : options.output_fd, 2);
  // Only 0-2 cross: descriptors the agent's libraries open without O_CLOEXEC (Boost.Asio's
  // sockets) must not outlive it in a daemon it starts (HAProxy would keep a dead agent's
  // listening ports accepting connections nobody serves).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // Children must not inherit our blocked signal mask or ignored dispositions.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  out_w.Close();
  err_w.Close();
  if (rc != 0) return ErrnoError("starting " + argv[0], rc);

  Fd pidfd{PidfdOpen(pid)};
  if (pidfd.fd < 0) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return ErrnoError("pidfd_open for " + argv[0], err);
  }
  CommandResult result;
  const auto deadline = Clock::now() + options.timeout;
  bool exited = false, timed_out = false;
  for (;;) {
    std::vector<pollfd> fds{{pidfd.fd, POLLIN, 0}};
    if (out_r.fd >= 0) fds.push_back({out_r.fd, POLLIN, 0});
    if (err_r.fd >= 0) fds.push_back({err_r.fd, POLLIN, 0});
    if (exited && fds.size() == 1) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = !exited;
      break;
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return ErrnoError("poll for " + argv[0]);
    if (n <= 0) continue;
    if (fds[0].revents != 0) exited = true;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Fd& src = fds[i].fd == out_r.fd ? out_r : err_r;
      std::string& dst = fds[i].fd == out_r.fd ? result.out : result.err;
      char buf[4096];
      ssize_t got = ::read(src.fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        src.Close();
        continue;
      }
      if (dst.size() < kMaxCapture) dst.append(buf, static_cast<size_t>(got));
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waiting for " + argv[0]);
  }
  if (timed_out) {
    return MakeError(
        ErrorCode::kDeadlineExceeded,
        fmt::format("{} did not finish within {} ms (killed)", argv[0], options.timeout.count()));
  }
  result.wait_status = status;
  return result;
}

}  // namespace phoenix::agent
