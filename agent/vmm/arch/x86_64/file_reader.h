// A read-only file with its size, read with pread (loops over short reads, retries EINTR).
//
// Ownership: owns the fd (closed on destruction). Move-only.
// Threading: ReadAt may be called from any thread (pread has no shared offset).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "agent/vmm/result.h"

namespace phoenix::vmm::x86 {

class FileReader {
 public:
  [[nodiscard]] static Result<FileReader> Open(const std::string& path);
  FileReader(FileReader&& other) noexcept : fd_(other.fd_), size_(other.size_) { other.fd_ = -1; }
  FileReader& operator=(FileReader&&) = delete;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  ~FileReader();

  uint64_t size() const { return size_; }
  // Reads exactly out.size() bytes at `offset`; a file shorter than that is an error.
  [[nodiscard]] Status ReadAt(uint64_t offset, std::span<uint8_t> out) const;

 private:
  FileReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace phoenix::vmm::x86
