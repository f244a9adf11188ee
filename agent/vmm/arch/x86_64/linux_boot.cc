#include "agent/vmm/arch/x86_64/linux_boot.h"

#include <algorithm>
#include <cstring>

#include "agent/vmm/arch/x86_64/acpi.h"
#include "agent/vmm/arch/x86_64/boot_layout.h"
#include "agent/vmm/arch/x86_64/file_reader.h"
#include "agent/vmm/arch/x86_64/kernel_image.h"

namespace phoenix::vmm {
namespace {

using namespace x86;

// Flat segment descriptors: access byte + flags (G, D/B, L) in the GDT format.
constexpr uint64_t kCode64Descriptor = 0x00af9b000000ffff;  // present, DPL0, exec/read, L, G
constexpr uint64_t kData64Descriptor = 0x00cf93000000ffff;  // present, DPL0, read/write, D/B, G
constexpr uint64_t kTssDescriptor = 0x00008b0000000067;     // present, busy 64-bit TSS, base 0
constexpr uint64_t kPageTablePresentWrite = 0x3;
constexpr uint64_t kPageLarge = 0x80;
constexpr uint32_t kElfCmdlineSize = 2048;  // x86 COMMAND_LINE_SIZE
constexpr uint32_t kDefaultInitrdAddrMax = 0x7fffffff;

std::string Hex(uint64_t value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

Status WriteBytes(const GuestMemory& memory, uint64_t gpa, std::span<const uint8_t> bytes,
                  std::string_view what) {
  if (auto r = memory.Write(gpa, bytes); !r) return std::unexpected(Context(what, r.error()));
  return {};
}

Status WriteGdtAndPageTables(const GuestMemory& memory) {
  const uint64_t gdt[kGdtEntries] = {0, 0, kCode64Descriptor, kData64Descriptor, kTssDescriptor};
  if (auto r = memory.WriteObject(kGdtAddress, gdt); !r)
    return std::unexpected(Context("GDT", r.error()));
  // Identity map of the first 1 GiB with 2 MiB pages: enough for the kernel, boot_params and the
  // command line, which is all the 64-bit boot protocol requires; the kernel builds its own.
  uint64_t pml4[512] = {};
  uint64_t pdpt[512] = {};
  uint64_t pd[512] = {};
  pml4[0] = kPdptAddress | kPageTablePresentWrite;
  pdpt[0] = kPdAddress | kPageTablePresentWrite;
  for (uint64_t i = 0; i < 512; ++i) pd[i] = (i << 21) | kPageTablePresentWrite | kPageLarge;
  for (auto [gpa, table] : {std::pair{kPml4Address, pml4}, {kPdptAddress, pdpt}, {kPdAddress, pd}})
    if (auto r = memory.Write(gpa, {reinterpret_cast<const uint8_t*>(table), 4096}); !r)
      return std::unexpected(Context("page tables", r.error()));
  return {};
}

}  // namespace

namespace x86 {

std::vector<E820Entry> E820Map(uint64_t memory_bytes) {
  std::vector<E820Entry> map;
  map.push_back({0, std::min(memory_bytes, kEbdaStart), kE820Ram});
  map.push_back({kEbdaStart, kLowMemoryEnd - kEbdaStart, kE820Reserved});
  if (memory_bytes > kLowMemoryEnd)
    map.push_back({kLowMemoryEnd, memory_bytes - kLowMemoryEnd, kE820Ram});
  return map;
}

Result<uint64_t> PlaceInitrd(uint64_t memory_bytes, uint64_t kernel_end, uint32_t initrd_addr_max,
                             uint64_t initrd_size) {
  const uint64_t top = std::min(memory_bytes, uint64_t{initrd_addr_max} + 1);
  const uint64_t addr = top >= initrd_size ? (top - initrd_size) & ~(kPageSize - 1) : 0;
  if (initrd_size > top || addr < kernel_end)
    return Fail("initrd of " + std::to_string(initrd_size) + " bytes does not fit between the " +
                "kernel's end " + Hex(kernel_end) + " and " + Hex(top) +
                " (guest RAM or the kernel's initrd_addr_max)");
  return addr;
}

}  // namespace x86

Result<LinuxEntry> LoadLinux(const GuestMemory& memory, const LinuxBootRequest& request) {
  if (memory.size() < kLowMemoryEnd)
    return Fail("guest RAM of " + std::to_string(memory.size()) + " bytes is below 1 MiB");
  auto kernel = LoadKernel(memory, request.kernel_path);
  if (!kernel) return std::unexpected(kernel.error());

  BootParams params{};
  if (kernel->setup_header) {
    params.hdr = *kernel->setup_header;
  } else {
    // A vmlinux carries no setup header: describe ourselves as a 2.15 loader would.
    params.hdr.boot_flag = kBootFlag;
    params.hdr.header = kSetupHeaderMagic;
    params.hdr.version = 0x020f;
    params.hdr.loadflags = kLoadedHigh;
    params.hdr.kernel_alignment = 0x1000000;
    params.hdr.initrd_addr_max = kDefaultInitrdAddrMax;
    params.hdr.cmdline_size = kElfCmdlineSize;
  }
  params.hdr.type_of_loader = kLoaderTypeUndefined;

  // Command line: cmdline_size counts the bytes before the terminating NUL (protocol 2.06+).
  const uint64_t cmdline_limit =
      std::min<uint64_t>(params.hdr.cmdline_size ? params.hdr.cmdline_size : 255, kCmdlineMax - 1);
  if (request.cmdline.size() > cmdline_limit)
    return Fail("command line of " + std::to_string(request.cmdline.size()) +
                " bytes exceeds the kernel's limit of " + std::to_string(cmdline_limit));
  std::vector<uint8_t> cmdline(request.cmdline.begin(), request.cmdline.end());
  cmdline.push_back(0);
  if (auto r = WriteBytes(memory, kCmdlineAddress, cmdline, "command line"); !r)
    return std::unexpected(r.error());
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(kCmdlineAddress);

  if (!request.initrd_path.empty()) {
    auto file = FileReader::Open(request.initrd_path);
    if (!file) return std::unexpected(Context("initrd " + request.initrd_path, file.error()));
    const uint32_t addr_max =
        params.hdr.initrd_addr_max ? params.hdr.initrd_addr_max : kDefaultInitrdAddrMax;
    auto addr = PlaceInitrd(memory.size(), kernel->load_end, addr_max, file->size());
    if (!addr) return std::unexpected(Context("initrd " + request.initrd_path, addr.error()));
    uint8_t* dest = memory.HostAddress(*addr, file->size());
    if (dest == nullptr && file->size() != 0) return Fail("initrd placement outside guest RAM");
    if (auto r = file->ReadAt(0, {dest, file->size()}); !r)
      return std::unexpected(Context("initrd " + request.initrd_path, r.error()));
    params.hdr.ramdisk_image = static_cast<uint32_t>(*addr);
    params.hdr.ramdisk_size = static_cast<uint32_t>(file->size());
  }

  const std::vector<E820Entry> e820 = E820Map(memory.size());
  params.e820_entries = static_cast<uint8_t>(e820.size());
  std::copy(e820.begin(), e820.end(), params.e820_table);

  auto acpi = BuildAcpiTables(kAcpiAddress, request.vcpus, request.virtio);
  if (!acpi) return std::unexpected(acpi.error());
  if (kAcpiAddress + acpi->bytes.size() > kLowMemoryEnd)
    return Fail("ACPI tables of " + std::to_string(acpi->bytes.size()) +
                " bytes overflow the BIOS area below 1 MiB");
  if (auto r = WriteBytes(memory, kAcpiAddress, acpi->bytes, "ACPI tables"); !r)
    return std::unexpected(r.error());
  params.acpi_rsdp_addr = acpi->rsdp;
  if (auto r = WriteVmGenerationId(memory); !r) return std::unexpected(r.error());

  if (auto r = memory.WriteObject(kBootParamsAddress, params); !r)
    return std::unexpected(Context("boot_params", r.error()));
  if (auto r = WriteGdtAndPageTables(memory); !r) return std::unexpected(r.error());

  return LinuxEntry{.rip = kernel->entry,
                    .boot_params = kBootParamsAddress,
                    .stack = kStackTop,
                    .pml4 = kPml4Address,
                    .gdt = kGdtAddress,
                    .gdt_limit = static_cast<uint16_t>(kGdtEntries * 8 - 1)};
}

void SetLongModeEntry(const LinuxEntry& entry, kvm_regs& regs, kvm_sregs& sregs) {
  regs = kvm_regs{};
  regs.rip = entry.rip;
  regs.rsi = entry.boot_params;
  regs.rsp = entry.stack;
  regs.rbp = entry.stack;
  regs.rflags = 0x2;

  auto segment = [](uint16_t selector, uint8_t type, bool code) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = type;
    s.present = 1;
    s.dpl = 0;
    s.db = code ? 0 : 1;  // a 64-bit code segment must have D clear when L is set
    s.s = 1;
    s.l = code ? 1 : 0;
    s.g = 1;
    return s;
  };
  sregs.cs = segment(kCodeSelector, 0xb, true);                 // execute/read, accessed
  const kvm_segment data = segment(kDataSelector, 0x3, false);  // read/write, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  kvm_segment tr{};
  tr.selector = kTssSelector;
  tr.limit = 0x67;
  tr.type = 0xb;  // busy 64-bit TSS: VM entry insists on a usable TR
  tr.present = 1;
  sregs.tr = tr;

  sregs.gdt.base = entry.gdt;
  sregs.gdt.limit = entry.gdt_limit;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;

  constexpr uint64_t kCr0Pe = 1ull << 0, kCr0Et = 1ull << 4, kCr0Pg = 1ull << 31;
  constexpr uint64_t kCr4Pae = 1ull << 5;
  constexpr uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;
  sregs.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
  sregs.cr3 = entry.pml4;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
}

}  // namespace phoenix::vmm
