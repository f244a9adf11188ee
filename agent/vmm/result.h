// The monitor's error vocabulary. agent/vmm depends on nothing else of Phoenix (it must stay a
// small, separately auditable monitor), so it carries its own std::expected-based result; code
// outside the monitor translates at the boundary.
//
// Threading: plain values.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace phoenix::vmm {

struct Error {
  int sys_errno = 0;    // errno of the failed system call; 0 when the failure is not a syscall's
  std::string message;  // what failed: "KVM_SET_SREGS: Invalid argument (errno 22)"
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

// Captures errno at the call site: Errno("KVM_CREATE_VM") -> "KVM_CREATE_VM: <strerror> (errno N)".
std::unexpected<Error> Errno(std::string_view what);
// Same, with an explicit errno value (for calls that return it, like pthread_*).
std::unexpected<Error> ErrnoValue(std::string_view what, int err);
std::unexpected<Error> Fail(std::string message);

// Prefixes an error's message with context: "restore snapshot /x: " + message.
Error Context(std::string_view context, Error error);

}  // namespace phoenix::vmm
