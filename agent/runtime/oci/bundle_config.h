// BundleConfig: the OCI runtime-spec config.json of one container instance, computed purely from
// the InstanceSpec and the host details the runtime chose (namespace file, cgroup path, user).
//
// What every container gets (see docs/containers.md for the reasoning):
//   - its own pid, mount, uts and ipc namespaces; the network namespace the runtime created for the
//     instance (joined by path, so it outlives the container for the agent's proxy and probes);
//   - where the host allows, its own user namespace: container uids 0-65535 are host uids
//     userns_base.. (a range no other container shares), so even the container's root is nobody
//     on the host and two containers' files and processes are foreign to each other;
//   - a non-root user (default 65534:65534, inside the user namespace) with NO capabilities at all
//     and noNewPrivileges. Ports below 1024 are allowed by net.ipv4.ip_unprivileged_port_start=0,
//     which the runtime sets when it makes the instance's network namespace (netns.h), not
//     CAP_NET_BIND_SERVICE, which every process of the container would inherit;
//   - cgroup limits: memory (memory_mib; swap capped at the same value where the host accounts
//     swap), CPU bandwidth (vcpus * period per period), a pids limit, no device access beyond the
//     runtime's defaults (/dev/null, zero, full, random, urandom, tty);
//   - the masked and read-only /proc and /sys paths of `crun spec`, /sys and /sys/fs/cgroup
//     read-only, a RLIMIT_NOFILE of 1024;
//   - a seccomp filter (seccomp_profile.h) refusing keyrings, new user namespaces, mounts, BPF,
//     perf, io_uring, ptrace and the other classes Docker's default profile denies;
//   - root "rootfs" (the bundle's overlay mount) writable: writes land in the instance's upper dir.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "agent/runtime/oci/json.h"
#include "agent/runtime/runtime.h"

namespace phoenix::agent::oci {

inline constexpr uint32_t kUsernsSize = 65536;

struct BundleDetails {
  std::filesystem::path netns;  // network namespace file the container joins
  std::string cgroups_path;     // linux.cgroupsPath, e.g. "/phoenix/phx-web-1"
  uint32_t uid = 65534;  // the guest's user and group, inside its user namespace if it has one
  uint32_t gid = 65534;
  // Host uid/gid of container id 0 when the container gets its own user namespace (kUsernsSize
  // ids); nullopt: no user namespace, uid/gid are host ids.
  std::optional<uint32_t> userns_base;
  uint32_t pids_limit = 256;
  uint64_t cpu_period_us = 100000;
  bool limit_swap = false;  // whether the host accounts swap (v1 memory.memsw.*)
};

// The process args: spec.command, else the image's default command. Empty when both are empty.
std::vector<std::string> ContainerArgs(const InstanceSpec& spec);

// A valid hostname (RFC 1123 label, <= 63 chars, lower case) from a guest or instance name.
std::string HostnameFor(std::string_view name);

// config.json for the instance. InvalidArgument for a spec no container can run (no command, a
// relative command, an env name with '=', zero memory or vcpus).
[[nodiscard]] Result<Json> BundleConfig(const InstanceSpec& spec, const BundleDetails& details);

}  // namespace phoenix::agent::oci
