#include "agent/vmm/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

namespace phoenix::vmm {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  // Word-wise scan: a 128 MiB guest is scanned in tens of milliseconds while snapshotting.
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  for (size_t i = 0; i < n / sizeof(uint64_t); ++i)
    if (w[i] != 0) return false;
  return true;
}

Status WriteAll(int fd, const uint8_t* p, size_t n, off_t offset) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("pwrite memory file");
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += w;
  }
  return {};
}

}  // namespace

Result<GuestMemory> GuestMemory::CreateAnonymous(uint64_t size_bytes) {
  if (size_bytes < (1ull << 20) || size_bytes > kMaxMemoryBytes || size_bytes % kPageSize != 0)
    return Fail("guest memory size " + std::to_string(size_bytes) +
                " must be a multiple of 4096 between 1 MiB and 3 GiB");
  int fd = memfd_create("phoenix-vmm-guest-ram", MFD_CLOEXEC);
  if (fd < 0) return Errno("memfd_create guest RAM");
  if (ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
    auto e = Errno("ftruncate guest RAM memfd");
    close(fd);
    return e;
  }
  void* p = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) {
    auto e = Errno("mmap guest RAM");
    close(fd);
    return e;
  }
  return GuestMemory(static_cast<uint8_t*>(p), size_bytes, fd);
}

Result<GuestMemory> GuestMemory::MapPrivateFile(const std::string& path, uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes > kMaxMemoryBytes || size_bytes % kPageSize != 0)
    return Fail("guest memory size " + std::to_string(size_bytes) + " is not a valid RAM size");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open memory file " + path);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    auto e = Errno("fstat memory file " + path);
    close(fd);
    return e;
  }
  if (static_cast<uint64_t>(st.st_size) != size_bytes) {
    close(fd);
    return Fail("memory file " + path + " has " + std::to_string(st.st_size) +
                " bytes, the snapshot says " + std::to_string(size_bytes));
  }
  // MAP_PRIVATE: copy-on-write, lazily faulted; the file stays the golden image.
  void* p = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  int saved = errno;
  close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) return ErrnoValue("mmap memory file " + path, saved);
  return GuestMemory(static_cast<uint8_t*>(p), size_bytes, -1);
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      memfd_(std::exchange(other.memfd_, -1)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    Release();
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    memfd_ = std::exchange(other.memfd_, -1);
  }
  return *this;
}

GuestMemory::~GuestMemory() { Release(); }

void GuestMemory::Release() {
  if (base_ != nullptr) munmap(base_, size_);
  if (memfd_ >= 0) close(memfd_);
  base_ = nullptr;
  memfd_ = -1;
  size_ = 0;
}

uint8_t* GuestMemory::HostAddress(uint64_t gpa, uint64_t length) const {
  if (gpa > size_ || length > size_ - gpa) return nullptr;
  return base_ + gpa;
}

Status GuestMemory::Read(uint64_t gpa, std::span<uint8_t> out) const {
  const uint8_t* p = HostAddress(gpa, out.size());
  if (p == nullptr)
    return Fail("guest address range [" + std::to_string(gpa) + ", +" + std::to_string(out.size()) +
                ") is outside guest RAM (" + std::to_string(size_) + " bytes)");
  std::memcpy(out.data(), p, out.size());
  return {};
}

Status GuestMemory::Write(uint64_t gpa, std::span<const uint8_t> in) const {
  uint8_t* p = HostAddress(gpa, in.size());
  if (p == nullptr)
    return Fail("guest address range [" + std::to_string(gpa) + ", +" + std::to_string(in.size()) +
                ") is outside guest RAM (" + std::to_string(size_) + " bytes)");
  std::memcpy(p, in.data(), in.size());
  return {};
}

Status GuestMemory::WriteToFile(const std::string& path) const {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create " + tmp);
  auto fail = [&](Error e) {
    close(fd);
    unlink(tmp.c_str());
    return std::unexpected(std::move(e));
  };
  if (ftruncate(fd, static_cast<off_t>(size_)) != 0) return fail(Errno("ftruncate " + tmp).error());
  // Runs of non-zero pages are written in one pwrite; zero pages stay holes of the sparse file.
  constexpr uint64_t kChunk = 1ull << 20;
  uint64_t run_start = 0;
  uint64_t run_len = 0;
  auto flush = [&]() -> Status {
    if (run_len == 0) return {};
    auto r = WriteAll(fd, base_ + run_start, run_len, static_cast<off_t>(run_start));
    run_len = 0;
    return r;
  };
  for (uint64_t off = 0; off < size_; off += kPageSize) {
    if (AllZero(base_ + off, kPageSize)) {
      if (auto r = flush(); !r) return fail(r.error());
      continue;
    }
    if (run_len == 0) run_start = off;
    run_len += kPageSize;
    if (run_len >= kChunk)
      if (auto r = flush(); !r) return fail(r.error());
  }
  if (auto r = flush(); !r) return fail(r.error());
  if (fsync(fd) != 0) return fail(Errno("fsync " + tmp).error());
  if (close(fd) != 0) {
    auto e = Errno("close " + tmp);
    unlink(tmp.c_str());
    return e;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    auto e = Errno("rename " + tmp + " to " + path);
    unlink(tmp.c_str());
    return e;
  }
  return {};
}

Result<uint64_t> GuestMemory::ResidentBytes() const {
  // mincore would answer for the page cache: on a MAP_PRIVATE file mapping it reports the memory
  // file's cached pages, including ones this process never touched. smaps' Rss counts only pages
  // mapped here. The kernel may split the mapping into several areas: sum those inside it.
  std::FILE* f = std::fopen("/proc/self/smaps", "re");
  if (f == nullptr) return Errno("open /proc/self/smaps");
  const auto from = reinterpret_cast<uintptr_t>(base_), to = from + size_;
  uint64_t kib = 0;
  bool inside = false;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long start = 0, end = 0, value = 0;
    char dash = 0;
    if (std::sscanf(line, "%lx%c%lx ", &start, &dash, &end) == 3 && dash == '-') {
      inside = start >= from && end <= to;
    } else if (inside && std::sscanf(line, "Rss: %lu kB", &value) == 1) {
      kib += value;
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Fail("read /proc/self/smaps failed");
  return kib << 10;
}

}  // namespace phoenix::vmm
