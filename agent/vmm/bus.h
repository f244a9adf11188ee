// Address decoding for guest port I/O and MMIO: a Bus maps disjoint [base, base + length) ranges to
// devices and forwards each access with the offset inside the range. The machine has two: one for
// the 16-bit I/O port space, one for MMIO.
//
// Ownership: the bus shares ownership of its devices with whoever created them.
// Threading: Insert only before any vCPU runs; Read/Write afterwards from any number of vCPU
// threads (the range table is immutable by then, so no lock).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "agent/vmm/device.h"
#include "agent/vmm/result.h"

namespace phoenix::vmm {

class Bus {
 public:
  // Refuses an empty range or one overlapping a device already inserted.
  Status Insert(uint64_t base, uint64_t length, std::shared_ptr<BusDevice> device);

  // False when no device claims `address` (the caller decides what the guest sees: all-ones for an
  // unclaimed read, a dropped write). An access straddling the end of a range is not claimed.
  bool Read(uint64_t address, std::span<uint8_t> data) const;
  bool Write(uint64_t address, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t base;
    uint64_t length;
    std::shared_ptr<BusDevice> device;
  };
  const Range* Find(uint64_t address, uint64_t size) const;

  std::vector<Range> ranges_;  // sorted by base
};

}  // namespace phoenix::vmm
