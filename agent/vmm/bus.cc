#include "agent/vmm/bus.h"

#include <algorithm>
#include <string>

namespace phoenix::vmm {

Status Bus::Insert(uint64_t base, uint64_t length, std::shared_ptr<BusDevice> device) {
  if (length == 0 || base + length < base) return Fail("bus range of length 0 or wrapping");
  if (!device) return Fail("bus range without a device");
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), base,
                             [](const Range& r, uint64_t b) { return r.base < b; });
  bool overlaps_next = it != ranges_.end() && base + length > it->base;
  bool overlaps_prev = it != ranges_.begin() && std::prev(it)->base + std::prev(it)->length > base;
  if (overlaps_next || overlaps_prev)
    return Fail("bus range 0x" + std::to_string(base) + "+" + std::to_string(length) +
                " overlaps a device already inserted");
  ranges_.insert(it, Range{base, length, std::move(device)});
  return {};
}

const Bus::Range* Bus::Find(uint64_t address, uint64_t size) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), address,
                             [](uint64_t a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  const Range& r = *std::prev(it);
  uint64_t offset = address - r.base;
  if (offset >= r.length || size > r.length - offset) return nullptr;
  return &r;
}

bool Bus::Read(uint64_t address, std::span<uint8_t> data) const {
  const Range* r = Find(address, data.size());
  if (r == nullptr) return false;
  r->device->Read(address - r->base, data);
  return true;
}

bool Bus::Write(uint64_t address, std::span<const uint8_t> data) const {
  const Range* r = Find(address, data.size());
  if (r == nullptr) return false;
  r->device->Write(address - r->base, data);
  return true;
}

}  // namespace phoenix::vmm
