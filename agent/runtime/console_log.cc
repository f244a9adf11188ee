#include "agent/runtime/console_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <string_view>

#include <spdlog/spdlog.h>

#include "proto/support/unique_fd.h"

namespace phoenix::agent {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kLogName = "console.log";

// Reads up to `max_bytes` from `offset` of `fd`.
Result<std::string> ReadAt(int fd, off_t offset, size_t max_bytes, const fs::path& path) {
  std::string out(max_bytes, '\0');
  size_t got = 0;
  while (got < max_bytes) {
    ssize_t n = ::pread(fd, out.data() + got, max_bytes - got, offset + static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading " + path.string());
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

Result<void> WriteWhole(const fs::path& path, std::string_view data) {
  const fs::path tmp = path.string() + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (fd.get() < 0) return ErrnoError("creating " + tmp.string());
  while (!data.empty()) {
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("writing " + tmp.string());
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("renaming to " + path.string());
  return {};
}

}  // namespace

std::string ReadTail(const fs::path& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return {};
  const auto size = static_cast<uint64_t>(st.st_size);
  // A few bytes more than asked, so that trimming trailing blanks still leaves max_bytes.
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size, max_bytes + 64));
  auto text = ReadAt(fd.get(), static_cast<off_t>(size - want), want, path);
  if (!text) return {};
  std::string s = std::move(*text);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

Result<bool> RotateIfLarger(const fs::path& path, uint64_t cap) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT) return false;
    return ErrnoError("opening " + path.string());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path.string());
  if (!S_ISREG(st.st_mode)) return FailedPrecondition(path.string() + " is not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size <= cap) return false;
  auto kept = ReadAt(fd.get(), static_cast<off_t>(size - cap), static_cast<size_t>(cap), path);
  if (!kept) return std::unexpected(kept.error());
  PHX_TRY(WriteWhole(path.string() + ".1", *kept));
  if (::ftruncate(fd.get(), 0) != 0) return ErrnoError("truncating " + path.string());
  return true;
}

ConsoleLogRotator::ConsoleLogRotator(boost::asio::io_context& loop, boost::asio::thread_pool& pool,
                                     Options options)
    : loop_(loop), pool_(pool), options_(std::move(options)), timer_(loop) {}

void ConsoleLogRotator::Start() { Schedule(); }

void ConsoleLogRotator::Schedule() {
  timer_.expires_after(options_.interval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    boost::asio::post(pool_, [this] {
      RotateAll();
      boost::asio::post(loop_, [this] { Schedule(); });
    });
  });
}

int ConsoleLogRotator::RotateAll() {
  int rotated = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(options_.guests_dir, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path log = it->path() / kLogName;
    auto r = RotateIfLarger(log, options_.max_bytes);
    if (!r) {
      spdlog::warn("console log rotation: {}", r.error().ToString());
    } else if (*r) {
      ++rotated;
      spdlog::info("console log {} passed {} bytes: rotated to {}.1", log.string(),
                   options_.max_bytes, kLogName);
    }
  }
  return rotated;
}

}  // namespace phoenix::agent
