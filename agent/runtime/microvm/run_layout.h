// Where the micro-VM runtime keeps things on disk, and the per-instance record it reads back after
// an agent restart.
//
//   <state_dir>/golden/<key>/            golden snapshot (phoenix-vmm's files), renamed into place
//                                        complete, so a crash mid-way leaves no half snapshot
//   <state_dir>/golden/<key>.boot.log    console of the golden boot (for "why did it fail")
//   <state_dir>/golden/.tmp-<key>-<n>/   a golden boot in progress (removed on failure / restart)
//   <state_dir>/run/<instance>/record    InstanceRecord, written before anything else exists
//   <state_dir>/run/<instance>/control.sock   the monitor's control socket
//   <state_dir>/run/<instance>/vmm.log   the monitor's own stdout/stderr
//   <state_dir>/netns/<instance>         the instance's network namespace (bind mount)
//
// Record format: one `key=value` per line; unknown keys are ignored (newer agents may add some).
//
// Thread-safety: plain values and pure functions; the file functions touch only the given paths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix::agent::microvm {

struct RunLayout {
  std::filesystem::path state_dir;

  std::filesystem::path GoldenDir(const std::string& key) const;
  std::filesystem::path GoldenBootLog(const std::string& key) const;
  // A fresh temp dir name for a golden boot of `key` (`attempt` keeps concurrent ones apart).
  std::filesystem::path GoldenTemp(const std::string& key, uint64_t attempt) const;
  bool IsGoldenTempOf(const std::filesystem::path& dir, const std::string& key) const;
  std::filesystem::path RunDir(const std::string& instance) const;
  std::filesystem::path RecordFile(const std::string& instance) const;
  std::filesystem::path ControlSocket(const std::string& instance) const;
  std::filesystem::path VmmLog(const std::string& instance) const;
  std::filesystem::path NetnsFile(const std::string& instance) const;
};

struct InstanceRecord {
  std::string instance;
  std::string guest_id;
  std::filesystem::path netns;
  std::string golden;       // golden key it was restored from; empty for a cold boot
  int pid = 0;              // the monitor; 0 until spawned
  uint64_t start_time = 0;  // /proc/<pid>/stat starttime: tells pid reuse apart

  bool operator==(const InstanceRecord&) const = default;
};

std::string FormatInstanceRecord(const InstanceRecord& record);
[[nodiscard]] Result<InstanceRecord> ParseInstanceRecord(std::string_view text);
// Atomically (temp file + rename).
[[nodiscard]] Result<void> WriteInstanceRecord(const std::filesystem::path& file,
                                               const InstanceRecord& record);
// kNotFound when the file does not exist.
[[nodiscard]] Result<InstanceRecord> ReadInstanceRecord(const std::filesystem::path& file);

// Instance names the runtime accepts: "phx-" prefix, [A-Za-z0-9._-], at most 64 characters.
bool ValidInstanceName(std::string_view name);

}  // namespace phoenix::agent::microvm
