// The Linux x86 zero page (struct boot_params with its struct setup_header), as laid out in the
// kernel's arch/x86/include/uapi/asm/bootparam.h. Only the fields the loader reads or writes are
// named; the rest is padding, and every named field's offset is checked against the kernel's.
//
// Threading: plain values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace phoenix::vmm::x86 {

inline constexpr uint32_t kSetupHeaderMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlag = 0xaa55;
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;
inline constexpr uint8_t kLoadedHigh = 0x01;    // loadflags: protected-mode code at 1 MiB
inline constexpr uint16_t kXlfKernel64 = 0x01;  // xloadflags: has the 64-bit entry at +0x200
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
inline constexpr size_t kE820MaxEntries = 128;  // E820_MAX_ENTRIES_ZEROPAGE

struct [[gnu::packed]] SetupHeader {
  uint8_t setup_sects;  // 0x1f1
  uint16_t root_flags;
  uint32_t syssize;
  uint16_t ram_size;
  uint16_t vid_mode;
  uint16_t root_dev;
  uint16_t boot_flag;  // 0x1fe
  uint16_t jump;       // 0x200
  uint32_t header;     // 0x202
  uint16_t version;    // 0x206
  uint32_t realmode_swtch;
  uint16_t start_sys_seg;
  uint16_t kernel_version;
  uint8_t type_of_loader;  // 0x210
  uint8_t loadflags;       // 0x211
  uint16_t setup_move_size;
  uint32_t code32_start;   // 0x214
  uint32_t ramdisk_image;  // 0x218
  uint32_t ramdisk_size;   // 0x21c
  uint32_t bootsect_kludge;
  uint16_t heap_end_ptr;
  uint8_t ext_loader_ver;
  uint8_t ext_loader_type;
  uint32_t cmd_line_ptr;     // 0x228
  uint32_t initrd_addr_max;  // 0x22c
  uint32_t kernel_alignment;
  uint8_t relocatable_kernel;  // 0x234
  uint8_t min_alignment;
  uint16_t xloadflags;    // 0x236
  uint32_t cmdline_size;  // 0x238
  uint32_t hardware_subarch;
  uint64_t hardware_subarch_data;
  uint32_t payload_offset;
  uint32_t payload_length;
  uint64_t setup_data;
  uint64_t pref_address;  // 0x258
  uint32_t init_size;     // 0x260
  uint32_t handover_offset;
  uint32_t kernel_info_offset;
};

struct [[gnu::packed]] E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};

struct [[gnu::packed]] BootParams {
  uint8_t pad0[0x070];
  uint64_t acpi_rsdp_addr;  // 0x070
  uint8_t pad1[0x1e8 - 0x078];
  uint8_t e820_entries;  // 0x1e8
  uint8_t pad2[0x1f1 - 0x1e9];
  SetupHeader hdr;  // 0x1f1
  uint8_t pad3[0x2d0 - 0x1f1 - sizeof(SetupHeader)];
  E820Entry e820_table[kE820MaxEntries];  // 0x2d0
  uint8_t pad4[0x1000 - 0xcd0];
};

// The kernel's offsets; a mismatch here would hand the kernel garbage silently.
static_assert(sizeof(SetupHeader) == 0x26c - 0x1f1);
static_assert(sizeof(E820Entry) == 20);
static_assert(sizeof(BootParams) == 0x1000);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, hdr) == 0x1f1);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, boot_flag) == 0x1fe);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, header) == 0x202);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, version) == 0x206);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, type_of_loader) == 0x210);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, loadflags) == 0x211);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, code32_start) == 0x214);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, ramdisk_image) == 0x218);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, ramdisk_size) == 0x21c);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, cmd_line_ptr) == 0x228);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, initrd_addr_max) == 0x22c);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, relocatable_kernel) == 0x234);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, xloadflags) == 0x236);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, cmdline_size) == 0x238);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, pref_address) == 0x258);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, init_size) == 0x260);

}  // namespace phoenix::vmm::x86
