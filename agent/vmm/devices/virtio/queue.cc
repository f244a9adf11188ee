#include "agent/vmm/devices/virtio/queue.h"

#include <atomic>
#include <bit>

namespace phoenix::vmm {
namespace {

constexpr uint64_t kDescSize = sizeof(VirtqDesc);  // 16
// flags u16, idx u16, ring[size] u16 (+ used_event u16, not used: no EVENT_IDX)
uint64_t AvailBytes(uint16_t size) { return 4 + 2ull * size; }
uint64_t UsedBytes(uint16_t size) { return 4 + sizeof(VirtqUsedElem) * uint64_t{size}; }

}  // namespace

uint64_t DescriptorChain::readable_bytes() const {
  uint64_t n = 0;
  for (const auto& b : readable) n += b.length;
  return n;
}

uint64_t DescriptorChain::writable_bytes() const {
  uint64_t n = 0;
  for (const auto& b : writable) n += b.length;
  return n;
}

Result<Virtqueue> Virtqueue::Create(const GuestMemory& memory, uint16_t max_size,
                                    const VirtqueueConfig& config, VirtqueuePosition position) {
  if (config.size == 0 || config.size > max_size || !std::has_single_bit(config.size))
    return Fail("virtqueue size " + std::to_string(config.size) + " is not a power of two up to " +
                std::to_string(max_size));
  if (config.desc % 16 || config.avail % 2 || config.used % 4)
    return Fail("virtqueue rings misaligned");
  if (!memory.HostAddress(config.desc, kDescSize * config.size))
    return Fail("virtqueue descriptor table outside guest RAM");
  if (!memory.HostAddress(config.avail, AvailBytes(config.size)))
    return Fail("virtqueue available ring outside guest RAM");
  if (!memory.HostAddress(config.used, UsedBytes(config.size)))
    return Fail("virtqueue used ring outside guest RAM");
  return Virtqueue(memory, config, position);
}

std::unexpected<Error> Virtqueue::Break(std::string why) {
  broken_ = true;
  return Fail("virtqueue broken by the driver: " + why);
}

Result<uint16_t> Virtqueue::AvailIndex() const {
  auto idx = memory_->ReadObject<uint16_t>(config_.avail + kVirtqIdxOffset);
  // Ring entries written before the index must be seen after it.
  std::atomic_thread_fence(std::memory_order_acquire);
  return idx;
}

Result<bool> Virtqueue::HasAvailable() const {
  if (broken_) return Fail("virtqueue is broken");
  auto idx = AvailIndex();
  if (!idx) return std::unexpected(idx.error());
  return *idx != position_.next_avail;
}

Result<std::optional<DescriptorChain>> Virtqueue::Pop() {
  if (broken_) return Fail("virtqueue is broken");
  auto idx = AvailIndex();
  if (!idx) return Break(idx.error().message);
  uint16_t pending = static_cast<uint16_t>(*idx - position_.next_avail);
  if (pending == 0) return std::nullopt;
  if (pending > config_.size)
    return Break("available index moved " + std::to_string(pending) + " past a queue of " +
                 std::to_string(config_.size));

  uint64_t slot = config_.avail + kVirtqRingOffset + 2ull * (position_.next_avail % config_.size);
  auto head = memory_->ReadObject<uint16_t>(slot);
  if (!head) return Break(head.error().message);
  if (*head >= config_.size)
    return Break("chain head " + std::to_string(*head) + " outside the descriptor table");
  ++position_.next_avail;

  DescriptorChain chain;
  chain.head = *head;
  std::string error;
  uint16_t index = *head;
  for (uint32_t count = 0;; ++count) {
    if (count >= config_.size) {
      error = "descriptor chain longer than the queue (a loop)";
      break;
    }
    auto desc = memory_->ReadObject<VirtqDesc>(config_.desc + kDescSize * index);
    if (!desc) {
      error = desc.error().message;
      break;
    }
    if (desc->flags & kVirtqDescFIndirect) {
      error = "indirect descriptor (not negotiated)";
      break;
    }
    if (desc->len == 0) {
      error = "zero-length descriptor";
      break;
    }
    if (!memory_->HostAddress(desc->addr, desc->len)) {
      error = "descriptor buffer outside guest RAM";
      break;
    }
    VirtqueueBuffer buffer{desc->addr, desc->len};
    if (desc->flags & kVirtqDescFWrite) {
      chain.writable.push_back(buffer);
    } else if (!chain.writable.empty()) {
      error = "device-readable descriptor after a device-writable one";
      break;
    } else {
      chain.readable.push_back(buffer);
    }
    if (!(desc->flags & kVirtqDescFNext)) break;
    if (desc->next >= config_.size) {
      error = "next descriptor outside the table";
      break;
    }
    index = desc->next;
  }
  if (!error.empty()) {
    if (auto pushed = PushUsed(*head, 0); !pushed) return std::unexpected(pushed.error());
    return Fail("malformed descriptor chain at head " + std::to_string(*head) + ": " + error);
  }
  return chain;
}

Status Virtqueue::PushUsed(uint16_t head, uint32_t written) {
  if (head >= config_.size) return Fail("used head out of range");
  VirtqUsedElem elem{head, written};
  uint64_t slot = config_.used + kVirtqRingOffset +
                  sizeof(VirtqUsedElem) * (position_.next_used % config_.size);
  if (auto r = memory_->WriteObject(slot, elem); !r) return r;
  ++position_.next_used;
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  return memory_->WriteObject<uint16_t>(config_.used + kVirtqIdxOffset, position_.next_used);
}

bool Virtqueue::NeedsInterrupt() const {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto flags = memory_->ReadObject<uint16_t>(config_.avail + 0);
  return !flags || !(*flags & kVirtqAvailFNoInterrupt);
}

Result<uint32_t> Virtqueue::WriteToChain(const DescriptorChain& chain,
                                         std::span<const uint8_t> data) const {
  uint64_t done = 0;
  for (const auto& buffer : chain.writable) {
    if (done == data.size()) break;
    uint64_t n = std::min<uint64_t>(buffer.length, data.size() - done);
    if (auto r = memory_->Write(buffer.gpa, data.subspan(done, n)); !r)
      return std::unexpected(r.error());
    done += n;
  }
  return static_cast<uint32_t>(done);
}

Status Virtqueue::ReadFromChain(const DescriptorChain& chain, uint64_t limit,
                                std::vector<uint8_t>& out) const {
  uint64_t total = chain.readable_bytes();
  if (total > limit)
    return Fail("chain carries " + std::to_string(total) + " bytes, more than " +
                std::to_string(limit));
  size_t start = out.size();
  out.resize(start + total);
  uint64_t done = 0;
  for (const auto& buffer : chain.readable) {
    if (auto r = memory_->Read(buffer.gpa, std::span(out).subspan(start + done, buffer.length)); !r)
      return r;
    done += buffer.length;
  }
  return {};
}

}  // namespace phoenix::vmm
