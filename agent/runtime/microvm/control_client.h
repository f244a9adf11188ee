// The agent's client of a phoenix-vmm control socket (Unix SOCK_STREAM; one request line -> one
// reply line "ok[ key=value]..." or "error MESSAGE"; protocol in /work/briefs/vmm-shared.md item
// 4). The agent keeps its own small client rather than linking the monitor's
// (agent/vmm/cli/control.h): agent/vmm depends on nothing of Phoenix and has its own error type,
// while the runtime wants phoenix::Result with errno detail and the agent's error codes.
//
// Thread-safety: free functions; every call uses its own connection. Bounded by `timeout` in total.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix::agent::microvm {

using ControlReply = std::map<std::string, std::string>;

// "ok a=1 b=2" -> {a:1, b:2}; "error MSG" -> Error kFailedPrecondition "MSG"; anything else
// kInternal.
[[nodiscard]] Result<ControlReply> ParseControlReply(std::string_view line);

// kUnavailable when the socket does not answer (no such socket, refused, timeout).
[[nodiscard]] Result<ControlReply> ControlCall(const std::filesystem::path& socket,
                                               std::string_view request,
                                               std::chrono::milliseconds timeout);

}  // namespace phoenix::agent::microvm
