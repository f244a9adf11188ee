// Test helpers: writes synthetic ELF vmlinux and bzImage files and finds the demo image's real
// kernel (images/demo/build.sh output) when it has been built.
#pragma once

#include <elf.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/vmm/arch/x86_64/boot_params.h"

namespace phoenix::vmm::x86::testing {

inline std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("vmm_x86_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

inline std::string WriteFile(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

struct ElfSpec {
  uint8_t elf_class = ELFCLASS64;
  uint16_t machine = EM_X86_64;
  uint64_t paddr = 0x200000;
  uint64_t entry = 0x200000;
  std::vector<uint8_t> code = {0xf4, 0xeb, 0xfd};  // hlt; jmp back
  uint64_t bss = 0x100;                            // memsz - filesz
};

// One PT_LOAD segment (virtual address in the kernel's high mapping, physical at spec.paddr).
inline std::vector<uint8_t> MakeElf(const ElfSpec& spec) {
  std::vector<uint8_t> file(0x1000 + spec.code.size(), 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = spec.elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = spec.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = spec.entry;
  eh.e_phoff = sizeof eh;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_flags = PF_R | PF_X;
  ph.p_offset = 0x1000;
  ph.p_vaddr = 0xffffffff80000000ull + spec.paddr;
  ph.p_paddr = spec.paddr;
  ph.p_filesz = spec.code.size();
  ph.p_memsz = spec.code.size() + spec.bss;
  ph.p_align = 0x1000;
  std::memcpy(file.data(), &eh, sizeof eh);
  std::memcpy(file.data() + sizeof eh, &ph, sizeof ph);
  std::memcpy(file.data() + 0x1000, spec.code.data(), spec.code.size());
  return file;
}

struct BzImageSpec {
  uint16_t version = 0x020f;
  uint8_t setup_sects = 3;
  uint16_t xloadflags = kXlfKernel64;
  uint8_t loadflags = kLoadedHigh;
  uint32_t init_size = 0x10000;
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t cmdline_size = 0x7ff;
  std::vector<uint8_t> payload = std::vector<uint8_t>(0x1000, 0x90);
};

inline std::vector<uint8_t> MakeBzImage(const BzImageSpec& spec) {
  const size_t setup_bytes = ((spec.setup_sects == 0 ? 4 : spec.setup_sects) + 1) * 512u;
  std::vector<uint8_t> file(setup_bytes + spec.payload.size(), 0);
  SetupHeader hdr{};
  hdr.setup_sects = spec.setup_sects;
  hdr.boot_flag = kBootFlag;
  hdr.jump = static_cast<uint16_t>(0xeb | ((0x26c - 0x202) << 8));  // jmp past the header
  hdr.header = kSetupHeaderMagic;
  hdr.version = spec.version;
  hdr.loadflags = spec.loadflags;
  hdr.code32_start = 0x100000;
  hdr.initrd_addr_max = spec.initrd_addr_max;
  hdr.kernel_alignment = 0x200000;
  hdr.relocatable_kernel = 1;
  hdr.xloadflags = spec.xloadflags;
  hdr.cmdline_size = spec.cmdline_size;
  hdr.init_size = spec.init_size;
  std::memcpy(file.data() + 0x1f1, &hdr, sizeof hdr);
  std::memcpy(file.data() + setup_bytes, spec.payload.data(), spec.payload.size());
  return file;
}

// Directory holding the demo image's vmlinux, vmlinuz and initrd.img, or "" when not built.
inline std::string DemoImageDir() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("PHOENIX_DEMO_IMAGE_DIR")) candidates.push_back(env);
  candidates.push_back(std::string(PHOENIX_SOURCE_DIR) + "/build/images/demo");
  for (const std::string& dir : candidates) {
    if (std::filesystem::exists(dir + "/vmlinux") && std::filesystem::exists(dir + "/vmlinuz") &&
        std::filesystem::exists(dir + "/initrd.img"))
      return dir;
  }
  return "";
}

}  // namespace phoenix::vmm::x86::testing
