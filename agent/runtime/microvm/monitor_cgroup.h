// The cgroup of one phoenix-vmm process: "phoenix/vmm-<name>" in every hierarchy that limits
// memory or pids (cgroup v2: one directory with memory.max and pids.max; v1 and hybrid hosts: one
// in the memory and one in the pids hierarchy). The monitor joins them itself (--cgroup) before
// it jails itself, so no guest instruction runs outside them. Detect, don't configure: the layout
// comes from oci::DetectCgroupLayout; a host without cgroups gets no directories and says so.
//
// Thread-safety: free functions on the given paths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/runtime/oci/cgroup_layout.h"
#include "proto/support/error.h"
#include "proto/support/unique_fd.h"

namespace phoenix::agent::microvm {

struct MonitorLimits {
  uint64_t memory_bytes = 0;  // guest RAM plus the monitor's own overhead
  uint32_t pids = 0;          // threads count: vCPUs, control, device backends
};

// Guest memory + 128 MiB, vCPUs + 8 threads: a monitor's own overhead is a few MiB and three
// threads besides its vCPUs (measured: `phoenix-vmm ... stats` monitor_overhead_kib).
MonitorLimits LimitsFor(uint32_t memory_mib, uint32_t vcpus);

// Pure: the directories of `name` for `layout` under `root`.
std::vector<std::filesystem::path> MonitorCgroupDirs(oci::CgroupLayout layout,
                                                     const std::filesystem::path& root,
                                                     const std::string& name);

// Creates the directories (enabling the controllers on v2) and writes the limits. Errors name the
// file that could not be written; a failed create removes what it made.
[[nodiscard]] Result<std::vector<std::filesystem::path>> CreateMonitorCgroup(
    oci::CgroupLayout layout, const std::filesystem::path& root, const std::string& name,
    const MonitorLimits& limits);

// Removes the directories (they must be empty: the monitor exited). Best effort; returns what
// could not be removed, in words.
std::vector<std::string> RemoveMonitorCgroup(oci::CgroupLayout layout,
                                             const std::filesystem::path& root,
                                             const std::string& name);

}  // namespace phoenix::agent::microvm
