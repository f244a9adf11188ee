#include "agent/vmm/arch/x86_64/kernel_image.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/vmm/arch/x86_64/file_reader.h"

namespace phoenix::vmm::x86 {
namespace {

constexpr uint64_t kSetupHeaderOffset = 0x1f1;
constexpr uint16_t kMinBootProtocol = 0x020c;  // 2.12: xloadflags and XLF_KERNEL_64
constexpr uint64_t kBzImage64BitEntryOffset = 0x200;
constexpr size_t kMaxProgramHeaders = 128;

std::string Hex(uint64_t value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string Mib(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

Status NeedsRam(const GuestMemory& memory, uint64_t end) {
  if (end > memory.size())
    return Fail("kernel needs guest RAM up to " + Hex(end) + " (" + Mib(end) + "), the guest has " +
                Mib(memory.size()));
  return {};
}

Result<LoadedKernel> LoadElf(const GuestMemory& memory, const FileReader& file) {
  Elf64_Ehdr eh;
  if (file.size() < sizeof eh) return Fail("truncated ELF header");
  if (auto r = file.ReadAt(0, {reinterpret_cast<uint8_t*>(&eh), sizeof eh}); !r)
    return std::unexpected(r.error());
  if (eh.e_ident[EI_CLASS] != ELFCLASS64)
    return Fail("32-bit ELF kernel: only a 64-bit x86-64 vmlinux can be booted");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Fail("big-endian ELF: not an x86-64 kernel");
  if (eh.e_machine != EM_X86_64)
    return Fail("ELF machine " + std::to_string(eh.e_machine) + " is not x86-64");
  if (eh.e_type != ET_EXEC)
    return Fail("ELF type " + std::to_string(eh.e_type) +
                " is not an executable (ET_EXEC) vmlinux");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders)
    return Fail("ELF program header table: " + std::to_string(eh.e_phnum) + " entries of " +
                std::to_string(eh.e_phentsize) + " bytes is not a vmlinux's");
  const uint64_t table_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_phoff > file.size() || table_bytes > file.size() - eh.e_phoff)
    return Fail("ELF program header table lies beyond the end of the file");
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  if (auto r = file.ReadAt(eh.e_phoff, {reinterpret_cast<uint8_t*>(phdrs.data()), table_bytes}); !r)
    return std::unexpected(r.error());

  LoadedKernel kernel;
  kernel.format = KernelFormat::kElf;
  kernel.load_start = UINT64_MAX;
  bool entry_loaded = false;
  std::vector<const Elf64_Phdr*> loads;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    const std::string what = "ELF segment at physical " + Hex(ph.p_paddr);
    if (ph.p_filesz > ph.p_memsz) return Fail(what + ": file size exceeds memory size");
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset)
      return Fail(what + ": its bytes lie beyond the end of the file (truncated kernel?)");
    if (ph.p_paddr < kLowMemoryEnd) return Fail(what + ": below 1 MiB, where the boot tables live");
    if (ph.p_paddr + ph.p_memsz < ph.p_paddr) return Fail(what + ": wraps around");
    if (auto r = NeedsRam(memory, ph.p_paddr + ph.p_memsz); !r) return std::unexpected(r.error());
    kernel.load_start = std::min<uint64_t>(kernel.load_start, ph.p_paddr);
    kernel.load_end = std::max<uint64_t>(kernel.load_end, ph.p_paddr + ph.p_memsz);
    if (eh.e_entry >= ph.p_paddr && eh.e_entry < ph.p_paddr + ph.p_filesz) entry_loaded = true;
    loads.push_back(&ph);
  }
  if (loads.empty()) return Fail("ELF kernel has no loadable segment");
  if (!entry_loaded)
    return Fail("ELF entry " + Hex(eh.e_entry) +
                " is not a physical address inside a loaded segment (not a 64-bit vmlinux?)");
  for (const Elf64_Phdr* ph : loads) {
    uint8_t* dest = memory.HostAddress(ph->p_paddr, ph->p_memsz);
    if (dest == nullptr) return Fail("ELF segment at " + Hex(ph->p_paddr) + " is outside RAM");
    if (auto r = file.ReadAt(ph->p_offset, {dest, ph->p_filesz}); !r)
      return std::unexpected(r.error());
    std::memset(dest + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
  }
  kernel.entry = eh.e_entry;
  return kernel;
}

Result<LoadedKernel> LoadBzImage(const GuestMemory& memory, const FileReader& file) {
  // The setup header's own length: it ends at 0x202 + the jump's 8-bit displacement.
  uint8_t head[0x280] = {};
  const size_t head_size = std::min<uint64_t>(sizeof head, file.size());
  if (auto r = file.ReadAt(0, {head, head_size}); !r) return std::unexpected(r.error());
  SetupHeader hdr{};
  const size_t header_end =
      std::min<size_t>(0x202 + head[0x201], kSetupHeaderOffset + sizeof(SetupHeader));
  std::memcpy(&hdr, head + kSetupHeaderOffset, header_end - kSetupHeaderOffset);

  char version[16];
  std::snprintf(version, sizeof version, "%u.%02u", hdr.version >> 8, hdr.version & 0xff);
  if (hdr.version < kMinBootProtocol)
    return Fail(std::string("bzImage boot protocol ") + version +
                " is older than 2.12 (no 64-bit entry point)");
  if ((hdr.xloadflags & kXlfKernel64) == 0)
    return Fail("bzImage has no 64-bit entry point (XLF_KERNEL_64 clear: a 32-bit kernel?)");
  if ((hdr.loadflags & kLoadedHigh) == 0)
    return Fail("zImage (loadflags LOADED_HIGH clear) loads below 1 MiB: not supported");
  const uint64_t setup_sects = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;
  const uint64_t kernel_offset = (setup_sects + 1) * 512;
  if (kernel_offset >= file.size())
    return Fail("bzImage is truncated: " + std::to_string(file.size()) +
                " bytes, its protected-mode kernel starts at " + std::to_string(kernel_offset));
  const uint64_t kernel_bytes = file.size() - kernel_offset;
  // The kernel decompresses itself in place up to init_size bytes from where it was loaded.
  const uint64_t footprint = std::max<uint64_t>(kernel_bytes, hdr.init_size);
  if (auto r = NeedsRam(memory, kBzImageLoadAddress + footprint); !r)
    return std::unexpected(r.error());
  uint8_t* dest = memory.HostAddress(kBzImageLoadAddress, kernel_bytes);
  if (dest == nullptr) return Fail("bzImage kernel does not fit in guest RAM");
  if (auto r = file.ReadAt(kernel_offset, {dest, kernel_bytes}); !r)
    return std::unexpected(r.error());

  LoadedKernel kernel;
  kernel.format = KernelFormat::kBzImage;
  kernel.entry = kBzImageLoadAddress + kBzImage64BitEntryOffset;
  kernel.load_start = kBzImageLoadAddress;
  kernel.load_end = kBzImageLoadAddress + footprint;
  hdr.code32_start = static_cast<uint32_t>(kBzImageLoadAddress);
  kernel.setup_header = hdr;
  return kernel;
}

}  // namespace

Result<LoadedKernel> LoadKernel(const GuestMemory& memory, const std::string& path) {
  auto file = FileReader::Open(path);
  if (!file) return std::unexpected(Context("kernel " + path, file.error()));
  uint8_t magic[4] = {};
  uint32_t hdrs = 0;
  uint16_t boot_flag = 0;
  if (file->size() >= sizeof magic) {
    if (auto r = file->ReadAt(0, magic); !r)
      return std::unexpected(Context("kernel " + path, r.error()));
  }
  if (file->size() >= 0x206) {
    if (auto r = file->ReadAt(0x1fe, {reinterpret_cast<uint8_t*>(&boot_flag), 2}); !r)
      return std::unexpected(Context("kernel " + path, r.error()));
    if (auto r = file->ReadAt(0x202, {reinterpret_cast<uint8_t*>(&hdrs), 4}); !r)
      return std::unexpected(Context("kernel " + path, r.error()));
  }
  Result<LoadedKernel> kernel;
  if (std::memcmp(magic, ELFMAG, SELFMAG) == 0) {
    kernel = LoadElf(memory, *file);
  } else if (hdrs == kSetupHeaderMagic && boot_flag == kBootFlag) {
    kernel = LoadBzImage(memory, *file);
  } else {
    kernel = Fail("neither an ELF vmlinux nor a bzImage (no ELF magic, no \"HdrS\" setup header)");
  }
  if (!kernel) return std::unexpected(Context("kernel " + path, kernel.error()));
  return kernel;
}

}  // namespace phoenix::vmm::x86
