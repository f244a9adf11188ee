// Golden snapshot integrity, shared by the runtimes that restore memory snapshots (libvirt/,
// microvm/).
//
// A golden snapshot is input like any other file. A disk error, a save cut short by a full disk,
// another QEMU version or a hand edit can leave it unrestorable. A guest that can only restore it
// then crash-loops forever. So:
//  - the runtime that made a snapshot seals it: <dir>/SEAL records the sha256 and size of every
//    file a restore reads, written atomically once the snapshot is complete;
//  - GoldenVerifier checks the seal the first time the snapshot is used in this process, which
//    is after it was made or after the agent started. It is not checked on every restore's hot
//    path: a snapshot that a restore used once stays trusted until it is set aside;
//  - a snapshot that fails its seal or a restore is set aside (renamed to golden/.bad-<name>,
//    replacing an older one, kept for a post-mortem). The instance cold-boots instead, and the
//    agent rebuilds the snapshot in the background (InstanceInfo::golden_problem).
// A snapshot without a SEAL (made by an agent before seals, or cut short before sealing) fails
// verification: it is rebuilt once rather than trusted.
//
// Threading: the free functions touch only the given directory; GoldenVerifier is thread-safe.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent {

inline constexpr char kGoldenSealFile[] = "SEAL";

// Writes <dir>/SEAL over `files` (plain names inside dir) atomically.
[[nodiscard]] Result<void> SealGolden(const std::filesystem::path& dir,
                                      const std::vector<std::string>& files);

// Recomputes what SEAL records. kFailedPrecondition naming the file that is missing, has another
// size or another digest, or saying the seal is missing or malformed.
[[nodiscard]] Result<void> VerifyGoldenSeal(const std::filesystem::path& dir);

// Identifies one golden directory (a rebuilt one at the same path is another).
struct GoldenIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const GoldenIdentity&) const = default;
};
[[nodiscard]] Result<GoldenIdentity> IdentifyGolden(const std::filesystem::path& dir);

// Remembers which golden directories passed verification in this process, and sets bad ones
// aside.
class GoldenVerifier {
 public:
  // Verifies `dir`'s seal unless this directory (same identity) passed before. Concurrent first
  // uses wait for one verification.
  [[nodiscard]] Result<GoldenIdentity> VerifyOnce(const std::filesystem::path& dir);

  // Renames `dir` to <parent>/.bad-<name> (removing an older one there) when it is still the
  // directory `identity` names, and forgets it was verified; returns where it went, or an empty
  // path when `dir` was already replaced or removed (another start set it aside first).
  [[nodiscard]] Result<std::filesystem::path> SetAside(const std::filesystem::path& dir,
                                                       const GoldenIdentity& identity);

  // Sets the snapshot `key` at `dir` aside because of `why`, logs it, and returns the words for
  // InstanceInfo::golden_problem. `identity`: the directory that failed (nullptr: whatever is
  // there now, i.e. the one that failed its seal).
  std::string Discard(const std::filesystem::path& dir, std::string_view key, std::string_view why,
                      const GoldenIdentity* identity = nullptr);

 private:
  std::mutex mu_;  // held across a verification: first uses are rare, hashing is I/O-bound
  std::map<std::filesystem::path, GoldenIdentity> verified_;
};

}  // namespace phoenix::agent
