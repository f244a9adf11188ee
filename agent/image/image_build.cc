// ImageStore::Build: runs an image recipe (`<recipes>/<name>/build.sh OUT`) as a child process
// with its output streamed line by line, bounded in time, and imports what it produced. Split from
// image_store.cc, which keeps the store itself (blobs, manifests, tags, import, resolve).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/image/image_store.h"
#include "agent/image/tree.h"

extern char** environ;

namespace phoenix::agent {

namespace fs = std::filesystem;
using image_fs::RemoveTree;
using image_fs::UniqueFd;

namespace {

constexpr size_t kTailLines = 20;
constexpr size_t kMaxLineBytes = 64 * 1024;

bool IsValidRecipeName(std::string_view recipe) {
  return !recipe.empty() && std::all_of(recipe.begin(), recipe.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Owned by root (or by the agent's own user, for tests run without root) and writable by nobody
// else.
Result<void> CheckOnlyRootCanWrite(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("stat " + path.string());
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return FailedPrecondition("refusing to run image recipes from " + path.string() +
                              ": it is owned by uid " + std::to_string(st.st_uid) + ", not root");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return FailedPrecondition("refusing to run image recipes from " + path.string() +
                              ": it is group- or world-writable (chmod go-w it)");
  }
  return {};
}

std::string ListRecipes(const fs::path& recipes_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = fs::directory_iterator(recipes_dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code fec;
    if (fs::is_regular_file(it->path() / "build.sh", fec)) {
      names.push_back(it->path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) return "no recipes in " + recipes_dir.string();
  std::string listed = "recipes:";
  for (size_t i = 0; i < names.size(); ++i) listed += (i == 0 ? " " : ", ") + names[i];
  return listed;
}

// Splits a byte stream into lines for the callback, remembering the last few for error messages.
class LineSplitter {
 public:
  explicit LineSplitter(const std::function<void(std::string_view)>& on_line) : on_line_(on_line) {}
  void Feed(std::string_view data) {
    for (char c : data) {
      if (c == '\n') {
        Emit();
      } else {
        partial_.push_back(c);
        if (partial_.size() >= kMaxLineBytes) Emit();
      }
    }
  }
  void Finish() {
    if (!partial_.empty()) Emit();
  }
  std::string Tail() const {
    std::string out;
    for (const auto& l : tail_) out += "\n  " + l;
    return out;
  }

 private:
  void Emit() {
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    if (on_line_) on_line_(partial_);
    tail_.push_back(std::move(partial_));
    if (tail_.size() > kTailLines) tail_.pop_front();
    partial_.clear();
  }
  const std::function<void(std::string_view)>& on_line_;
  std::string partial_;
  std::deque<std::string> tail_;
};

}  // namespace

Result<ImageRecord> ImageStore::Build(const fs::path& recipes_dir, const std::string& recipe,
                                      const std::string& name, const std::string& tag,
                                      const std::function<void(std::string_view line)>& on_line) {
  if (!IsValidRecipeName(recipe)) {
    return InvalidArgument("recipe", "recipe name \"" + recipe + "\" must match [a-z0-9-]+");
  }
  if (recipes_dir.empty()) {
    return FailedPrecondition("this agent has no recipe directory (start it with --recipes DIR)");
  }
  std::error_code ec;
  fs::path recipe_dir = fs::absolute(recipes_dir, ec) / recipe;
  if (ec) return Internal("resolving " + recipes_dir.string() + ": " + ec.message());
  fs::path script = recipe_dir / "build.sh";
  struct stat st {};
  if (::stat(script.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return NotFound("image recipe \"" + recipe + "\" not found (no " + script.string() + "); " +
                    ListRecipes(recipes_dir));
  }
  if (::access(script.c_str(), X_OK) != 0) {
    return FailedPrecondition(script.string() + " is not executable");
  }
  // The agent runs recipes as root: one that another user could edit would be theirs to run.
  for (const fs::path& p : {fs::absolute(recipes_dir, ec), recipe_dir, script}) {
    PHX_TRY(CheckOnlyRootCanWrite(p));
  }
  auto out_dir = MakeTempPath("build-");
  if (!out_dir) return std::unexpected(out_dir.error());
  struct Cleanup {
    fs::path dir;
    ~Cleanup() { RemoveTree(dir); }
  } cleanup{*out_dir};

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  // posix_spawn rather than fork: the agent is multi-threaded, and nothing that is unsafe after
  // fork may run before exec.
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  if (int rc = posix_spawn_file_actions_init(&actions); rc != 0)
    return ErrnoError("posix_spawn", rc);
  if (int rc = posix_spawnattr_init(&attr); rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return ErrnoError("posix_spawnattr_init", rc);
  }
  struct SpawnCleanup {
    posix_spawn_file_actions_t* a;
    posix_spawnattr_t* b;
    ~SpawnCleanup() {
      posix_spawn_file_actions_destroy(a);
      posix_spawnattr_destroy(b);
    }
  } spawn_cleanup{&actions, &attr};
  sigset_t no_signals;
  sigset_t all_signals;
  sigemptyset(&no_signals);
  sigfillset(&all_signals);
  int rc = 0;
  if ((rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2)) != 0 ||
      // A recipe runs as root: it gets none of the agent's sockets.
      (rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) != 0 ||
      (rc = posix_spawn_file_actions_addchdir_np(&actions, recipe_dir.c_str())) != 0 ||
      // Its own process group, so a timeout kills the whole build; default signal dispositions
      // and mask, whatever the agent's threads changed.
      (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
      (rc = posix_spawnattr_setsigmask(&attr, &no_signals)) != 0 ||
      (rc = posix_spawnattr_setsigdefault(&attr, &all_signals)) != 0 ||
      (rc = posix_spawnattr_setflags(
           &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0) {
    return ErrnoError("preparing to run " + script.string(), rc);
  }
  std::string arg0 = script.string();
  std::string arg1 = out_dir->string();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  rc = posix_spawn(&pid, arg0.c_str(), &actions, &attr, argv, environ);
  if (rc != 0) return ErrnoError("running " + script.string(), rc);
  write_end.Reset();
  spdlog::info("image store: building recipe {} (pid {}) into {}", recipe, pid, out_dir->string());

  LineSplitter lines(on_line);
  const auto deadline = std::chrono::steady_clock::now() + options_.build_timeout;
  bool exited = false;
  std::optional<std::chrono::steady_clock::time_point> drain_deadline;
  bool timed_out = false;
  bool eof = false;
  char buf[8192];
  while (!eof) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (drain_deadline && now >= *drain_deadline)) {
      timed_out = !drain_deadline.has_value();
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    int n = ::poll(&p, 1, 100);
    if (n < 0 && errno != EINTR) {
      int err = errno;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return ErrnoError("poll", err);
    }
    if (n > 0) {
      ssize_t got = ::read(read_end.get(), buf, sizeof(buf));
      if (got > 0) {
        lines.Feed(std::string_view(buf, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        eof = true;
      }
    }
    if (!exited) {
      // WNOWAIT leaves the zombie in place, so its pid (and process group id) cannot be reused
      // before the group is killed below.
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid) {
        exited = true;
        // A background process the recipe left behind may hold the pipe open: read what is
        // buffered for a short while, then stop waiting for it.
        drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      }
    }
  }
  lines.Finish();
  // Nothing of the build may outlive it: kill its process group (ESRCH when already gone).
  ::kill(-pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waiting for " + script.string());
  }
  const std::optional<int> status = wstatus;
  if (timed_out) {
    return MakeError(ErrorCode::kDeadlineExceeded,
                     "image recipe " + recipe + " did not finish within " +
                         std::to_string(options_.build_timeout.count()) +
                         "s; last output:" + lines.Tail());
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    std::string how =
        WIFEXITED(*status)
            ? "exit status " + std::to_string(WEXITSTATUS(*status))
            : "signal " + std::to_string(WIFSIGNALED(*status) ? WTERMSIG(*status) : 0);
    return Internal("image recipe " + recipe + " failed with " + how +
                    "; last output:" + lines.Tail());
  }
  auto record = ImportInternal(*out_dir, name, tag, /*may_link=*/true);
  if (!record) return std::unexpected(record.error().Wrap("image recipe " + recipe));
  return record;
}

}  // namespace phoenix::agent
