// Instance network namespaces: a fresh network namespace per container instance, bind-mounted on a
// file (like `ip netns add`) so it outlives the container and an agent restart: the agent's proxy
// and health probes enter it to reach the guest on 127.0.0.1, and the container joins it by path.
// Only `lo` exists in it (brought up here); nothing connects it to the host's network.
//
// Thread-safety: safe from any thread. CreateNetns does its unshare on a short-lived helper thread,
// so the calling thread never changes namespace. Needs CAP_SYS_ADMIN (the agent runs as root).
#pragma once

#include <filesystem>

#include "proto/support/error.h"

namespace phoenix::agent::oci {

// Creates the namespace and binds it on `file` (created; its directory must exist). AlreadyExists
// when `file` exists. Leaves nothing behind on failure.
[[nodiscard]] Result<void> CreateNetns(const std::filesystem::path& file);

// Unmounts and removes `file`; succeeds when it does not exist. The namespace itself goes away once
// no process is in it any more.
[[nodiscard]] Result<void> RemoveNetns(const std::filesystem::path& file);

// Whether `path` is a mount point in this process's mount namespace (/proc/self/mountinfo).
bool IsMountPoint(const std::filesystem::path& path);

}  // namespace phoenix::agent::oci
