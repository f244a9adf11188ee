// The on-disk snapshot of a paused micro-VM: a directory holding
//   state.phxsnap  header (magic "PHXSNAP\0", format version, payload length, CRC32C of the
//                  payload) then the encoded MachineState
//   memory.raw     guest RAM, byte for byte (all-zero pages are holes), mapped MAP_PRIVATE on
//   restore
// The state file is written last and renamed into place, so its presence means the snapshot is
// complete. Reading refuses, with a message saying which check failed, a wrong magic, another
// format version, a short or overlong file, a checksum mismatch, impossible values (zero vCPUs,
// memory size not a page multiple or above kMaxMemoryBytes) and a memory file whose size differs
// from the recorded memory size. Nothing is ever run from a snapshot that failed a check.
//
// Threading: free functions over files; callers serialize access to one directory.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agent/vmm/memory.h"
#include "agent/vmm/result.h"
#include "agent/vmm/snapshot/machine_state.h"

namespace phoenix::vmm {

inline constexpr char kStateFileName[] = "state.phxsnap";
inline constexpr char kMemoryFileName[] = "memory.raw";
inline constexpr uint32_t kSnapshotFormatVersion = 1;

std::vector<uint8_t> EncodeMachineState(const MachineState& state);
Result<MachineState> DecodeMachineState(std::span<const uint8_t> file_bytes);

// Creates `dir` if needed, writes memory.raw, then state.phxsnap (temp file, fsync, rename, fsync
// of the directory).
Status WriteSnapshot(const std::string& dir, const MachineState& state, const GuestMemory& memory);

// Reads and validates state.phxsnap and checks memory.raw's size against it.
Result<MachineState> ReadSnapshotState(const std::string& dir);

}  // namespace phoenix::vmm
