// RunRecord: what the OCI runtime remembers about one instance on disk
// (<state_dir>/run/<instance>), written before anything of the instance is created, so that
// Destroy, List and re-adoption work also after an agent restart or a crash half-way through Start.
//
// Format: one `key=value` per line (values are paths and names without newlines); unknown keys are
// ignored so newer agents can add some.
//
// Thread-safety: plain values and pure functions; the file functions touch only the given path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "proto/support/error.h"

namespace phoenix::agent::oci {

struct RunRecord {
  std::string instance;
  std::string guest_id;
  std::string oci;               // "crun" or "runc": the tool whose state holds the container
  std::filesystem::path bundle;  // bundle dir: config.json, rootfs/ (overlay), upper/, work/
  std::filesystem::path netns;   // bind-mounted network namespace file
  std::string cgroups_path;      // linux.cgroupsPath
  uint32_t memory_mib = 0;
  uint64_t init_start_time = 0;  // /proc/<pid>/stat starttime of the init: tells pid reuse apart
  uint32_t userns_base = 0;      // host id of the container's id 0; 0: no user namespace
  std::string address;           // its address on the node network; empty: none

  bool operator==(const RunRecord&) const = default;
};

std::string FormatRunRecord(const RunRecord& record);
[[nodiscard]] Result<RunRecord> ParseRunRecord(std::string_view text);

// Writes atomically (temp file + rename) so a crash never leaves half a record.
[[nodiscard]] Result<void> WriteRunRecord(const std::filesystem::path& file,
                                          const RunRecord& record);
// kNotFound when the file does not exist.
[[nodiscard]] Result<RunRecord> ReadRunRecord(const std::filesystem::path& file);

// The starttime field of /proc/<pid>/stat (clock ticks since boot); 0 when unreadable.
uint64_t ProcessStartTime(int pid);

}  // namespace phoenix::agent::oci
