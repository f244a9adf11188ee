// The file-level half of the image store: hashing and copying what a recipe produced, without
// letting that output reach anything outside itself.
//
// An image is input: whoever wrote the recipe output controls its names, links and modes. So every
// file is opened relative to the import directory with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), which refuses absolute paths, "..", and symlinks anywhere on the way (a
// manifest naming `k -> /etc/shadow`, or a tree whose subdirectory is swapped for a link while it
// is copied); symlinks inside a root filesystem are kept as links, never followed. Setuid and
// setgid bits are dropped from regular files: a stored root filesystem must not plant privileged
// executables on the host, whoever can reach the store.
//
// Thread-safety: free functions over paths and descriptors the caller owns; Sha256 and UniqueFd are
// single-owner values.
#pragma once

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"
#include "proto/support/unique_fd.h"

namespace phoenix::agent::image_fs {

using ::phoenix::UniqueFd;

// OpenSSL only fails these calls when out of memory: a broken invariant, not an I/O error.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  std::string HexDigest();

 private:
  EVP_MD_CTX* ctx_;
};

[[nodiscard]] Result<void> WriteAll(int fd, std::string_view data,
                                    const std::filesystem::path& what);

// Reads `fd` to the end, feeding the hash and (when out_fd >= 0) copying to out_fd.
[[nodiscard]] Result<uint64_t> HashAndCopy(int fd, const std::filesystem::path& src, Sha256& hash,
                                           int out_fd, const std::filesystem::path& dst);

// Opens `rel` beneath the directory `dir_fd` (see the top of this file). kInvalidArgument naming
// `rel` for a path that leaves the directory or passes through a symlink.
[[nodiscard]] Result<UniqueFd> OpenBeneath(int dir_fd, const std::filesystem::path& rel, int flags);

// The permission bits an image keeps of an entry's st_mode: all of 07777 but setuid and setgid on
// regular files.
mode_t StoredMode(mode_t st_mode);

struct TreeEntry {
  std::string rel;  // "." for the root, else a relative generic path
  mode_t mode = 0;  // full st_mode
};

// Every entry of the tree at `dir`, parents before children. Fails on entries other than
// directories, regular files and symlinks.
[[nodiscard]] Result<std::vector<TreeEntry>> ListTree(const std::filesystem::path& dir);

// Copies the listed entries from `src` to the empty directory `dst` with their StoredMode.
[[nodiscard]] Result<void> CopyTree(const std::filesystem::path& src,
                                    const std::filesystem::path& dst,
                                    const std::vector<TreeEntry>& entries);

// Makes every directory under `path` writable so a tree with read-only directories can be removed
// without root, then removes it; failures are logged, not returned (cleanup of temporaries).
void RemoveTree(const std::filesystem::path& path);

}  // namespace phoenix::agent::image_fs

namespace phoenix::agent {

// The sha256 of a directory tree (hex): over its entries sorted by relative path, each with its
// type, StoredMode, symlink target or file-content hash. Ownership and times are not part of it.
// Fails on entries other than directories, regular files and symlinks. `total_size` receives the
// sum of the regular files' sizes.
[[nodiscard]] Result<std::string> HashTree(const std::filesystem::path& dir,
                                           uint64_t* total_size = nullptr);

// The sha256 of a file's contents (hex).
[[nodiscard]] Result<std::string> HashFile(const std::filesystem::path& file);

}  // namespace phoenix::agent
