// LockedTextFile: a small secret text file that a running supervisor and offline commands
// (`phoenix-supervisor join-token`) both read and rewrite: the tokens file, the enrolled nodes.
// Every read-modify-write holds an flock on "<file>.lock", so two processes never interleave;
// every write replaces the whole file atomically, mode 0600 (pki::WritePrivateFile); readers see
// external changes because Changed() compares the file's inode, size and mtime with those of the
// last read.
//
// Thread-safety: none; the owner serializes calls (its own mutex).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "proto/support/error.h"

namespace phoenix::supervisor::auth {

class LockedTextFile {
 public:
  explicit LockedTextFile(std::filesystem::path file) : file_(std::move(file)) {}

  // Writes `initial` when the file does not exist (under the lock, so once).
  [[nodiscard]] Result<void> CreateIfMissing(const std::string& initial);
  // Whether the file differs from the last Read or Rewrite (a deleted file counts).
  [[nodiscard]] Result<bool> Changed() const;
  // The file's text; nullopt when it does not exist. Warns once per read if others may read it.
  [[nodiscard]] Result<std::optional<std::string>> Read();
  // Under the lock: the current text (nullopt: none) -> the new text, written atomically. Nothing
  // is written when `change` fails. Returns the text written.
  [[nodiscard]] Result<std::string> Rewrite(
      const std::function<Result<std::string>(const std::optional<std::string>&)>& change);

  const std::filesystem::path& path() const { return file_; }

 private:
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    timespec mtime{};
    bool exists = false;
    bool operator==(const FileId& o) const;
  };
  Result<FileId> Stat() const;

  const std::filesystem::path file_;
  FileId loaded_;
};

}  // namespace phoenix::supervisor::auth
