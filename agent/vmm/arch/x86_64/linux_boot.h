// x86-64 Linux boot protocol: puts a kernel (ELF vmlinux or bzImage), its initrd and command line,
// the zero page (boot_params with e820), ACPI tables describing the machine, identity page tables,
// a GDT and a stack into guest memory, and computes the BSP's 64-bit entry state.
//
// Guest physical layout written here (all below 1 MiB except the kernel and the initrd):
//   0x00500  GDT              0x07000  boot_params (zero page)   0x09000  PML4, 0x0a000 PDPT,
//   0x0b000  PD (1 GiB)       0x20000  command line              0x8ff00  initial stack top
//   0xe0000  RSDP, then XSDT, FADT, MADT, DSDT (the BIOS area 0x9fc00..0x100000 is e820-reserved)
//   kernel   ELF: its PT_LOAD physical addresses; bzImage: 1 MiB
//   initrd   page-aligned, as high as possible below min(RAM end, initrd_addr_max)
//
// Ownership: LoadLinux reads the files and writes guest memory; it keeps nothing.
// Threading: pure functions; call before any vCPU runs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "agent/vmm/memory.h"
#include "agent/vmm/result.h"

namespace phoenix::vmm {

struct VirtioMmioSlot {
  uint64_t base;
  uint64_t size;
  uint32_t gsi;
};

struct LinuxBootRequest {
  std::string kernel_path{}, initrd_path{}, cmdline{};  // initrd_path may be empty
  uint32_t vcpus = 1;
  std::vector<VirtioMmioSlot> virtio{};
};

struct LinuxEntry {
  uint64_t rip, boot_params, stack, pml4, gdt;
  uint16_t gdt_limit;
};

// Loads an ELF vmlinux (PT_LOAD segments at their physical addresses, 64-bit entry) or a bzImage
// (protected-mode kernel at 1 MiB, 64-bit entry = code32_start + 0x200), the initrd near the top
// of RAM below 4 GiB (respecting initrd_addr_max), the command line, boot_params (zero page) with
// e820 (RAM, reserved EBDA/BIOS hole 0x9fc00..0x100000), acpi_rsdp_addr, and ACPI tables
// (RSDP, XSDT, FADT with HW_REDUCED_ACPI, MADT with one LAPIC per vCPU and the IOAPIC at
// 0xFEC00000 GSI base 0, DSDT with one "LNRO0005" virtio-mmio device per slot: _HID, _UID,
// _CRS = Memory32Fixed(base,size) + Extended Interrupt(level, active high, gsi)), identity page
// tables for the first 1 GiB, a GDT and a stack. Refuses kernels it cannot boot, saying why.
[[nodiscard]] Result<LinuxEntry> LoadLinux(const GuestMemory& memory,
                                           const LinuxBootRequest& request);

// The BSP's 64-bit entry state: rip, rsi = boot_params, rsp, rflags = 2; CS/DS/ES/SS/FS/GS
// flat 64-bit segments from the GDT, CR0 = PE|PG|ET, CR3 = pml4, CR4 = PAE, EFER = LME|LMA.
void SetLongModeEntry(const LinuxEntry& entry, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace phoenix::vmm
