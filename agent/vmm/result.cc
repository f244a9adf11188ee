#include "agent/vmm/result.h"

#include <cerrno>
#include <cstring>

namespace phoenix::vmm {

std::unexpected<Error> ErrnoValue(std::string_view what, int err) {
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  message += " (errno " + std::to_string(err) + ")";
  return std::unexpected(Error{err, std::move(message)});
}

std::unexpected<Error> Errno(std::string_view what) { return ErrnoValue(what, errno); }

std::unexpected<Error> Fail(std::string message) {
  return std::unexpected(Error{0, std::move(message)});
}

Error Context(std::string_view context, Error error) {
  error.message = std::string(context) + ": " + error.message;
  return error;
}

}  // namespace phoenix::vmm
