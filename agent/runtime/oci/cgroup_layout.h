// Cgroup layout detection for the OCI runtime: which cgroup hierarchy this host mounts at
// /sys/fs/cgroup, where an instance's cgroup directories live, and how many OOM kills the kernel
// counted in one. Detect, don't configure: the runtime adapts to the host (hybrid v1+v2 hosts need
// crun to run without the cgroup2 mount, see docs/containers.md) and never remounts cgroups itself.
//
// Thread-safety: free functions; the Detect/read functions only read /sys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent::oci {

enum class CgroupLayout {
  kUnified,  // cgroup2 mounted at /sys/fs/cgroup
  kLegacy,   // v1 controllers under a tmpfs, no cgroup2 mount
  kHybrid,   // v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified
};

std::string_view CgroupLayoutName(CgroupLayout layout);  // "cgroup v2", "cgroup v1", ...

// Pure: the layout from statfs f_type of /sys/fs/cgroup and (when it exists) of
// /sys/fs/cgroup/unified. Errors for a root that is neither cgroup2 nor tmpfs (no cgroups).
[[nodiscard]] Result<CgroupLayout> ClassifyCgroupLayout(int64_t root_fs_type,
                                                        std::optional<int64_t> unified_fs_type);

// statfs on `root` and `root`/unified, then ClassifyCgroupLayout.
[[nodiscard]] Result<CgroupLayout> DetectCgroupLayout(
    const std::filesystem::path& root = "/sys/fs/cgroup");

// The existing cgroup directories of `cgroups_path` (the OCI linux.cgroupsPath, e.g.
// "/phoenix/phx-web-1"): <root>/<path> and <root>/<hierarchy>/<path> for every mounted hierarchy.
std::vector<std::filesystem::path> ExistingCgroupDirs(const std::filesystem::path& root,
                                                      std::string_view cgroups_path);

// Pure: the "oom_kill N" counter from memory.events (v2) or memory.oom_control (v1) text.
std::optional<uint64_t> ParseOomKillCount(std::string_view text);

// The OOM kill count of the memory cgroup at `cgroups_path`; nullopt when unreadable (gone).
std::optional<uint64_t> ReadOomKillCount(CgroupLayout layout, const std::filesystem::path& root,
                                         std::string_view cgroups_path);

}  // namespace phoenix::agent::oci
