// Error and Result: how every Phoenix module outside the VMM reports failure.
//
// Phoenix code does not throw. A function that can fail returns Result<T> (std::expected) carrying
// an Error: a code that maps one-to-one onto a gRPC status code, a message a user can act on, and
// the offending request field when the error is about input. Broken invariants are not errors:
// they hit PHX_CHECK, which aborts.
//
// Thread-safety: plain values; safe to copy and move between threads.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace phoenix {

// Values mirror grpc::StatusCode so the API layer maps them without a table.
enum class ErrorCode {
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kUnauthenticated = 16,
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string field;  // dotted request field path ("spec.memory_mib") when the input is at fault

  // "spec.memory_mib: must be at least 64" or just the message.
  std::string ToString() const { return field.empty() ? message : field + ": " + message; }

  // Prefixes context while keeping code and field: Wrap("starting guest web") -> "starting guest
  // web: <message>".
  Error Wrap(std::string_view context) const& {
    Error e = *this;
    e.message = std::string(context) + ": " + message;
    return e;
  }
};

template <typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> MakeError(ErrorCode code, std::string message, std::string field = {}) {
  return std::unexpected<Error>(Error{code, std::move(message), std::move(field)});
}
inline std::unexpected<Error> InvalidArgument(std::string field, std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(field));
}
inline std::unexpected<Error> NotFound(std::string message) {
  return MakeError(ErrorCode::kNotFound, std::move(message));
}
inline std::unexpected<Error> AlreadyExists(std::string message) {
  return MakeError(ErrorCode::kAlreadyExists, std::move(message));
}
inline std::unexpected<Error> FailedPrecondition(std::string message) {
  return MakeError(ErrorCode::kFailedPrecondition, std::move(message));
}
inline std::unexpected<Error> Unavailable(std::string message) {
  return MakeError(ErrorCode::kUnavailable, std::move(message));
}
inline std::unexpected<Error> Internal(std::string message) {
  return MakeError(ErrorCode::kInternal, std::move(message));
}
// An error from a failed system call: "<what>: <strerror(errno)> (errno N)". Reads errno, so call
// it right after the failing call.
inline std::unexpected<Error> ErrnoError(std::string_view what, int err = errno) {
  return MakeError(ErrorCode::kInternal, std::string(what) + ": " + std::strerror(err) +
                                             " (errno " + std::to_string(err) + ")");
}

inline std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kCancelled: return "CANCELLED";
    case ErrorCode::kUnknown: return "UNKNOWN";
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kAlreadyExists: return "ALREADY_EXISTS";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kAborted: return "ABORTED";
    case ErrorCode::kUnimplemented: return "UNIMPLEMENTED";
    case ErrorCode::kInternal: return "INTERNAL";
    case ErrorCode::kUnavailable: return "UNAVAILABLE";
    case ErrorCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

}  // namespace phoenix

// Aborts with file:line and the condition when an invariant is broken. Never for input errors.
#define PHX_CHECK(cond)                                                                  \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: PHX_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// Returns the error of a Result-returning expression from the enclosing function.
#define PHX_TRY(expr)                                       \
  do {                                                      \
    auto&& phx_try_result_ = (expr);                        \
    if (!phx_try_result_) {                                 \
      return std::unexpected(std::move(phx_try_result_).error()); \
    }                                                       \
  } while (0)
