// Test helper: plays the guest driver's side of split virtqueues in GuestMemory (descriptor
// table, available ring, reading the used ring) and of the virtio-mmio registers.
#pragma once

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "agent/vmm/device.h"
#include "agent/vmm/devices/virtio/queue.h"
#include "agent/vmm/memory.h"

namespace phoenix::vmm::testing {

struct Buf {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

class DriverQueue {
 public:
  // Rings for queue `n` (size `size`) at 0x10000 + n * 0x4000.
  DriverQueue(const GuestMemory& memory, uint32_t n, uint16_t size) : memory_(memory) {
    config_.size = size;
    config_.desc = 0x10000 + n * 0x4000;
    config_.avail = config_.desc + 0x1000;
    config_.used = config_.desc + 0x2000;
  }
  const VirtqueueConfig& config() const { return config_; }

  // Writes a chain into free descriptors (a simple bump allocator, wrapping) and publishes it.
  uint16_t AddChain(const std::vector<Buf>& bufs) {
    uint16_t head = next_desc_;
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t index = next_desc_;
      next_desc_ = (next_desc_ + 1) % config_.size;
      VirtqDesc desc{};
      desc.addr = bufs[i].gpa;
      desc.len = bufs[i].len;
      desc.flags =
          (bufs[i].writable ? kVirtqDescFWrite : 0) | (i + 1 < bufs.size() ? kVirtqDescFNext : 0);
      desc.next = next_desc_;
      WriteDesc(index, desc);
    }
    Publish(head);
    return head;
  }
  void WriteDesc(uint16_t index, const VirtqDesc& desc) {
    (void)memory_.WriteObject(config_.desc + 16ull * index, desc);
  }
  void Publish(uint16_t head) {
    (void)memory_.WriteObject<uint16_t>(config_.avail + 4 + 2ull * (avail_idx_ % config_.size),
                                        head);
    ++avail_idx_;
    (void)memory_.WriteObject<uint16_t>(config_.avail + 2, avail_idx_);
  }
  void SetAvailIndex(uint16_t idx) {
    avail_idx_ = idx;
    (void)memory_.WriteObject<uint16_t>(config_.avail + 2, idx);
  }
  void SetAvailFlags(uint16_t flags) { (void)memory_.WriteObject<uint16_t>(config_.avail, flags); }
  uint16_t UsedIndex() const { return *memory_.ReadObject<uint16_t>(config_.used + 2); }
  VirtqUsedElem Used(uint16_t i) const {
    return *memory_.ReadObject<VirtqUsedElem>(config_.used + 4 + 8ull * (i % config_.size));
  }
  // Waits (bounded) until the used index reaches `idx`.
  bool WaitUsed(uint16_t idx, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (UsedIndex() != idx) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

 private:
  const GuestMemory& memory_;
  VirtqueueConfig config_;
  uint16_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
};

// 32-bit register access to a BusDevice.
inline uint32_t Reg(BusDevice& d, uint64_t offset) {
  uint32_t v = 0;
  d.Read(offset, {reinterpret_cast<uint8_t*>(&v), 4});
  return v;
}
inline void SetReg(BusDevice& d, uint64_t offset, uint32_t value) {
  d.Write(offset, {reinterpret_cast<const uint8_t*>(&value), 4});
}

}  // namespace phoenix::vmm::testing
