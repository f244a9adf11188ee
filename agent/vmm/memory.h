// Guest physical memory: host mappings placed at guest physical addresses, and the only way the
// monitor and its devices reach guest RAM (every guest-supplied address is bounds-checked here).
//
// Layout: RAM starts at guest physical 0 and is one contiguous region of at most kMaxMemoryBytes,
// which keeps it below the 32-bit MMIO hole (virtio-mmio, IOAPIC, LAPIC live at 0xD0000000 and up).
//
// Ownership: GuestMemory owns its mappings (munmap on destruction) and, for anonymous memory, the
// memfd behind them. Move-only.
// Threading: the layout never changes after creation. Read/Write/HostAddress may be called from any
// thread; the bytes themselves are shared with the running guest, so devices copy what they parse
// (never read a guest field twice and trust both reads to agree).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

#include "agent/vmm/result.h"

namespace phoenix::vmm {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kMaxMemoryBytes = 3ull << 30;  // 3 GiB: RAM ends below the MMIO hole

class GuestMemory {
 public:
  // Zeroed RAM of `size_bytes` (a multiple of kPageSize, 1 MiB .. kMaxMemoryBytes) backed by a
  // memfd mapped MAP_SHARED, so a snapshot can stream it to a file without a second copy.
  static Result<GuestMemory> CreateAnonymous(uint64_t size_bytes);

  // Maps an existing memory file (written by WriteToFile) MAP_PRIVATE: pages are read lazily from
  // the page cache on the guest's first touch and copied on its first write, so restoring costs the
  // same for 64 MiB as for 3 GiB and nothing the guest writes ever reaches the file. The file size
  // must equal `size_bytes`.
  static Result<GuestMemory> MapPrivateFile(const std::string& path, uint64_t size_bytes);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  uint64_t size() const { return size_; }
  // Host address of guest physical 0 (for KVM_SET_USER_MEMORY_REGION).
  uint8_t* host_base() const { return base_; }

  // Host pointer for [gpa, gpa + length) when the whole range is RAM; nullptr otherwise (a guest
  // handed us a bad address: the caller reports it, never dereferences it).
  uint8_t* HostAddress(uint64_t gpa, uint64_t length) const;

  Status Read(uint64_t gpa, std::span<uint8_t> out) const;
  Status Write(uint64_t gpa, std::span<const uint8_t> in) const;

  template <typename T>
  Result<T> ReadObject(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    if (auto r = Read(gpa, {reinterpret_cast<uint8_t*>(&value), sizeof value}); !r)
      return std::unexpected(r.error());
    return value;
  }
  template <typename T>
  Status WriteObject(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return Write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof value});
  }

  // Writes all of guest RAM to `path` (created 0600, replaced atomically via a temporary file and
  // rename, fsync'd). All-zero pages become holes, so the file's disk usage is what the guest used.
  Status WriteToFile(const std::string& path) const;

  // Bytes of guest RAM resident in this process (the mapping's Rss in /proc/self/smaps, not
  // mincore, which would count the memory file's page cache): with MapPrivateFile this is what
  // the guest has touched since restore.
  Result<uint64_t> ResidentBytes() const;

 private:
  GuestMemory(uint8_t* base, uint64_t size, int memfd) : base_(base), size_(size), memfd_(memfd) {}
  void Release();

  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  int memfd_ = -1;  // -1 for file-backed private mappings
};

}  // namespace phoenix::vmm
