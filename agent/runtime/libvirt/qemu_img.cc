#include "agent/runtime/libvirt/qemu_img.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace phoenix::agent::libvirt {

namespace {
constexpr size_t kMaxOutput = 4096;
}

Result<void> RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  PHX_CHECK(!argv.empty());
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe for " + argv[0]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // nothing else of the agent's
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return ErrnoError("starting " + argv[0], rc);
  }
  std::string output;
  bool timed_out = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[1024];
    ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child closed its output (exited)
    if (output.size() < kMaxOutput) output.append(buf, static_cast<size_t>(got));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waiting for " + argv[0]);
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (timed_out) {
    return Internal(argv[0] + " did not finish within " + std::to_string(timeout.count()) +
                    " ms (killed): " + output);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                      : "killed by signal " + std::to_string(WTERMSIG(status));
  return Internal(argv[0] + " " + how + ": " + output);
}

Result<void> CreateOverlay(const std::filesystem::path& backing,
                           const std::filesystem::path& overlay) {
  std::error_code ec;
  if (std::filesystem::exists(overlay, ec)) {
    return AlreadyExists("overlay " + overlay.string() + " already exists");
  }
  auto r = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-b", backing.string(), "-F",
                       "qcow2", overlay.string()},
                      std::chrono::seconds(30));
  if (!r) {
    std::filesystem::remove(overlay, ec);
    return std::unexpected(r.error().Wrap("creating overlay " + overlay.string()));
  }
  return {};
}

}  // namespace phoenix::agent::libvirt
