// Where the x86-64 Linux loader puts things in guest physical memory, and its pure helpers
// (exposed for tests). See linux_boot.h for the picture.
//
// Threading: constants and pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "agent/vmm/arch/x86_64/boot_params.h"
#include "agent/vmm/result.h"

namespace phoenix::vmm::x86 {

inline constexpr uint64_t kGdtAddress = 0x500;
inline constexpr uint64_t kGdtEntries = 5;  // null, null, code64 0x10, data 0x18, TSS 0x20
inline constexpr uint16_t kCodeSelector = 0x10;
inline constexpr uint16_t kDataSelector = 0x18;
inline constexpr uint16_t kTssSelector = 0x20;
inline constexpr uint64_t kBootParamsAddress = 0x7000;
inline constexpr uint64_t kPml4Address = 0x9000;
inline constexpr uint64_t kPdptAddress = 0xa000;
inline constexpr uint64_t kPdAddress = 0xb000;
inline constexpr uint64_t kCmdlineAddress = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;
inline constexpr uint64_t kStackTop = 0x8ff00;
inline constexpr uint64_t kEbdaStart = 0x9fc00;    // EBDA + VGA + BIOS: reserved up to 1 MiB
inline constexpr uint64_t kAcpiAddress = 0xe0000;  // where the kernel's RSDP scan looks too
// The 16-byte VM generation id (acpi.h VmGenIdDeviceAml), in the reserved hole below the tables.
inline constexpr uint64_t kVmGenIdAddress = 0xdf000;

// RAM below the EBDA, the reserved hole 0x9fc00..0x100000, RAM from 1 MiB to the end.
std::vector<E820Entry> E820Map(uint64_t memory_bytes);

// Page-aligned initrd address as high as possible below min(RAM end, initrd_addr_max + 1) and
// not below the kernel's end; refuses when it does not fit.
Result<uint64_t> PlaceInitrd(uint64_t memory_bytes, uint64_t kernel_end, uint32_t initrd_addr_max,
                             uint64_t initrd_size);

}  // namespace phoenix::vmm::x86
