#include "proto/support/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace phoenix {

std::optional<std::filesystem::path> UnixSocketPath(std::string_view address) {
  constexpr std::string_view kScheme = "unix:";
  if (!address.starts_with(kScheme)) return std::nullopt;
  std::filesystem::path path(address.substr(kScheme.size()));
  if (!path.is_absolute()) return std::nullopt;
  return path;
}

namespace {

// True when something accepts connections on the socket at `path`.
bool SomeoneListens(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

}  // namespace

Result<void> PrepareUnixSocket(const std::filesystem::path& path) {
  if (path.native().size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgument("listen", "socket path " + path.string() + " is longer than " +
                                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                         " bytes");
  }
  const std::filesystem::path dir = path.parent_path();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoError("stat " + dir.string());
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
    if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod 0700 " + dir.string());
  }
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return ErrnoError("stat " + path.string());
  }
  if (!S_ISSOCK(st.st_mode)) {
    return FailedPrecondition(path.string() +
                              " exists and is not a socket; refusing to replace it");
  }
  if (SomeoneListens(path)) {
    return AlreadyExists("another server is listening on " + path.string() +
                         " (a second agent needs its own --listen unix:PATH)");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("removing the stale socket " + path.string());
  }
  return {};
}

Result<void> RestrictUnixSocket(const std::filesystem::path& path) {
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoError("chmod 0600 " + path.string());
  return {};
}

}  // namespace phoenix
