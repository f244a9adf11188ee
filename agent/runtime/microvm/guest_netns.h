// Guest networking of micro-VMs: every instance (and every golden boot) gets its own network
// namespace holding a tap `tap0` = 172.16.0.1/30, so every clone of a golden snapshot keeps the
// guest address 172.16.0.2 it had when the snapshot was taken, each in its own namespace (as
// Firecracker's snapshot clones do). The agent opens the tap inside the namespace and hands its
// descriptor to phoenix-vmm (--tap-fd); the proxy and health probes reach the guest at
// 172.16.0.2:<port> from inside the namespace. Nothing connects the namespace to the host's
// network.
//
// Everything is done with syscalls and ioctls (TUNSETIFF, SIOCSIFADDR, SIOCSIFNETMASK,
// SIOCSIFFLAGS): no `ip` binary. Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (the agent runs as root).
//
// Thread-safety: safe from any thread. The namespace switch happens on a short-lived helper thread,
// so the calling thread never changes namespace. The returned descriptors are O_CLOEXEC and owned
// by the caller.
#pragma once

#include <filesystem>
#include <string_view>

#include "proto/support/error.h"
#include "proto/support/unique_fd.h"

namespace phoenix::agent::microvm {

inline constexpr std::string_view kTapName = "tap0";
inline constexpr std::string_view kHostAddress = "172.16.0.1";  // tap0, the guest's gateway
inline constexpr std::string_view kGuestAddress = "172.16.0.2";
inline constexpr int kPrefixLength = 30;

struct GuestNetwork {
  UniqueFd tap;    // /dev/net/tun attached to tap0 (IFF_TAP | IFF_NO_PI)
  UniqueFd netns;  // the namespace itself (/proc/thread-self/ns/net): keeps it alive while open
};

// Creates a fresh network namespace with lo and tap0 (172.16.0.1/30) up. With `bind_file` set, the
// namespace is also bind-mounted on that file (created; AlreadyExists when it exists), so it
// outlives the agent and the proxy can enter it by path; without, it lives as long as
// GuestNetwork::netns (or a process inside it). Leaves nothing behind on failure.
[[nodiscard]] Result<GuestNetwork> CreateGuestNetwork(const std::filesystem::path& bind_file = {});

}  // namespace phoenix::agent::microvm
