#include "supervisor/auth/locked_text_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <spdlog/spdlog.h>

#include "proto/support/pki.h"
#include "proto/support/unique_fd.h"

namespace phoenix::supervisor::auth {

namespace {

// Holds an flock on "<file>.lock" for its lifetime (closing the fd releases it).
Result<UniqueFd> AcquireLock(const std::filesystem::path& file) {
  std::filesystem::path lock_path = file;
  lock_path += ".lock";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError("opening " + lock_path.string());
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError("flock " + lock_path.string());
  }
  return fd;
}

}  // namespace

bool LockedTextFile::FileId::operator==(const FileId& o) const {
  return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
         mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec;
}

Result<LockedTextFile::FileId> LockedTextFile::Stat() const {
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoError("stat " + file_.string());
    return FileId{.size = 0};
  }
  return FileId{
      .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim, .exists = true};
}

Result<void> LockedTextFile::CreateIfMissing(const std::string& initial) {
  if (::access(file_.c_str(), F_OK) == 0) return {};
  if (errno != ENOENT) return ErrnoError("checking " + file_.string());
  auto lock = AcquireLock(file_);
  if (!lock) return std::unexpected(lock.error());
  if (::access(file_.c_str(), F_OK) == 0) return {};
  return pki::WritePrivateFile(file_, initial);
}

Result<bool> LockedTextFile::Changed() const {
  auto now = Stat();
  if (!now) return std::unexpected(now.error());
  return !(*now == loaded_);
}

Result<std::optional<std::string>> LockedTextFile::Read() {
  UniqueFd fd(::open(file_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno != ENOENT) return ErrnoError("opening " + file_.string());
    loaded_ = FileId{.size = 0};
    return std::nullopt;
  }
  // Identify exactly the inode we read, not whatever the path names a moment later.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("fstat " + file_.string());
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading " + file_.string());
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  if ((st.st_mode & 077) != 0) {
    spdlog::warn("{} is readable by others (mode {:o}); it should be 0600", file_.string(),
                 st.st_mode & 0777);
  }
  loaded_ = FileId{
      .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim, .exists = true};
  return text;
}

Result<std::string> LockedTextFile::Rewrite(
    const std::function<Result<std::string>(const std::optional<std::string>&)>& change) {
  auto lock = AcquireLock(file_);
  if (!lock) return std::unexpected(lock.error());
  auto current = Read();  // another process may have written since we last looked
  if (!current) return std::unexpected(current.error());
  auto next = change(*current);
  if (!next) return std::unexpected(next.error());
  PHX_TRY(pki::WritePrivateFile(file_, *next));
  auto written = Stat();
  if (!written) return std::unexpected(written.error());
  loaded_ = *written;
  return next;
}

}  // namespace phoenix::supervisor::auth
