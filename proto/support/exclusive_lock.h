// One owner per directory: an flock held for a process's life on a lock file, so a second
// phoenix-supervisor on one state dir (or a second agent on one image store) refuses to start
// instead of sharing it. flock, not a pid file: the kernel releases it when its holder dies, even
// by SIGKILL, so a crash never leaves a stale lock. Header-only.
//
// Thread-safety: plain function; the returned fd holds the lock until closed.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>

#include "proto/support/error.h"
#include "proto/support/unique_fd.h"

namespace phoenix {

// Takes the lock on `file` (created 0644) and writes this process's pid into it. kUnavailable when
// another process holds it: "<what> <file> is in use by another process (pid N)".
[[nodiscard]] inline Result<UniqueFd> LockExclusively(const std::filesystem::path& file,
                                                      std::string_view what) {
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return ErrnoError("opening " + file.string());
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoError("locking " + file.string());
    char holder[32] = {};
    const ssize_t n = ::pread(fd.get(), holder, sizeof holder - 1, 0);
    std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "unknown";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return Unavailable(std::string(what) + " " + file.parent_path().string() +
                       " is in use by another process (pid " + pid + ")");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return ErrnoError("writing " + file.string());
  }
  return fd;
}

}  // namespace phoenix
