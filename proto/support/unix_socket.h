// Local gRPC endpoints on Unix sockets: the agent's API is served on one by default, so that only
// root (the socket is 0600, its directory 0700 when we create it) can reach it; no guest and no
// other local user can connect, whatever the network does.
//
// Thread-safety: free functions over plain values; call them before and right after the server
// starts.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix {

// Where phoenix-agent serves and phoenixctl looks when nothing else is said.
inline constexpr std::string_view kDefaultAgentEndpoint = "unix:/run/phoenix/agent.sock";

// The path of a "unix:/absolute/path" address; nullopt for anything else (TCP, unix-abstract:,
// a relative path).
std::optional<std::filesystem::path> UnixSocketPath(std::string_view address);

// Before a server binds `path`: creates its directory (0700) when it is missing; refuses
// (kAlreadyExists) when a live server already answers there, since gRPC would silently unlink it
// and take its place; removes a stale socket left by a dead server. kFailedPrecondition when the
// path exists and is not a socket.
[[nodiscard]] Result<void> PrepareUnixSocket(const std::filesystem::path& path);

// After the server started: the socket becomes 0600 (owner only).
[[nodiscard]] Result<void> RestrictUnixSocket(const std::filesystem::path& path);

}  // namespace phoenix
