// Virtqueue: the device side of one split virtqueue (virtio 1.x, layouts of <linux/virtio_ring.h>)
// in guest memory. It pops available descriptor chains, checking every guest address through
// GuestMemory and refusing loops (a chain longer than the queue), zero-length buffers, indirect
// descriptors (VIRTIO_F_INDIRECT_DESC is never offered) and readable-after-writable buffers; it
// pushes used elements with the length written. Event-index suppression is not offered; the
// driver's VIRTQ_AVAIL_F_NO_INTERRUPT flag is honoured through NeedsInterrupt().
//
// Guest memory is shared with running vCPUs: every ring field is copied once and then validated,
// acquire/release fences order index reads and writes against ring contents.
//
// Ownership: refers to GuestMemory, which must outlive it. Copyable plain state.
// Threading: none inside; one thread at a time (the device's backend thread once active; the
// transport reads positions only while the device is quiesced).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "agent/vmm/memory.h"
#include "agent/vmm/result.h"

namespace phoenix::vmm {

// What the driver programmed for one queue through the transport.
struct VirtqueueConfig {
  uint16_t size = 0;   // a power of two, 1 .. max size
  uint64_t desc = 0;   // descriptor table, 16-byte aligned
  uint64_t avail = 0;  // driver area (available ring), 2-byte aligned
  uint64_t used = 0;   // device area (used ring), 4-byte aligned
};

// Ring layouts of virtio 1.x section 2.7 (<linux/virtio_ring.h> is not valid C++: its
// vring_init converts void*), little-endian like x86.
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct VirtqUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqDesc) == 16 && sizeof(VirtqUsedElem) == 8);
inline constexpr uint16_t kVirtqDescFNext = 1;
inline constexpr uint16_t kVirtqDescFWrite = 2;
inline constexpr uint16_t kVirtqDescFIndirect = 4;
inline constexpr uint16_t kVirtqAvailFNoInterrupt = 1;
// Offsets inside the available ring (flags, idx, ring[]) and the used ring (flags, idx, ring[]).
inline constexpr uint64_t kVirtqIdxOffset = 2;
inline constexpr uint64_t kVirtqRingOffset = 4;

// Where the device is in the rings: the part of a queue's state a snapshot must keep.
struct VirtqueuePosition {
  uint16_t next_avail = 0;  // next avail ring index to consume (free-running, mod 2^16)
  uint16_t next_used = 0;   // next used ring index to fill (free-running)
};

struct VirtqueueBuffer {
  uint64_t gpa = 0;
  uint32_t length = 0;
};

// One available chain, split into its device-readable and device-writable parts (in order).
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<VirtqueueBuffer> readable;
  std::vector<VirtqueueBuffer> writable;
  uint64_t readable_bytes() const;
  uint64_t writable_bytes() const;
};

class Virtqueue {
 public:
  // Refuses a size that is not a power of two in [1, max_size] and rings that are misaligned or
  // not entirely inside guest RAM.
  static Result<Virtqueue> Create(const GuestMemory& memory, uint16_t max_size,
                                  const VirtqueueConfig& config, VirtqueuePosition position = {});

  // The next available chain; nullopt when the driver has made none available. A malformed chain
  // yields an Error after the queue has already returned its head to the used ring with length 0
  // (so the driver can reclaim it; the caller should signal the used buffer as for a success).
  // When the driver broke the ring itself (head index out of range, avail index jumping more
  // than the queue size, rings unreadable) the queue marks itself broken and every later Pop
  // fails without touching guest memory.
  Result<std::optional<DescriptorChain>> Pop();
  // Whether the driver has made a chain available (without consuming it).
  Result<bool> HasAvailable() const;
  // Returns `head` with `written` bytes written into its writable buffers.
  Status PushUsed(uint16_t head, uint32_t written);
  // False while the driver set VIRTQ_AVAIL_F_NO_INTERRUPT.
  bool NeedsInterrupt() const;

  // Copies `data` into the chain's writable buffers in order; returns the bytes written
  // (less than data.size() when the buffers are too small).
  Result<uint32_t> WriteToChain(const DescriptorChain& chain, std::span<const uint8_t> data) const;
  // Appends the chain's readable bytes to `out`, up to `limit` in all; fails beyond `limit`.
  Status ReadFromChain(const DescriptorChain& chain, uint64_t limit,
                       std::vector<uint8_t>& out) const;

  const VirtqueueConfig& config() const { return config_; }
  VirtqueuePosition position() const { return position_; }
  bool broken() const { return broken_; }

 private:
  Virtqueue(const GuestMemory& memory, const VirtqueueConfig& config, VirtqueuePosition position)
      : memory_(&memory), config_(config), position_(position) {}
  Result<uint16_t> AvailIndex() const;
  std::unexpected<Error> Break(std::string why);

  const GuestMemory* memory_;
  VirtqueueConfig config_;
  VirtqueuePosition position_;
  bool broken_ = false;
};

}  // namespace phoenix::vmm
