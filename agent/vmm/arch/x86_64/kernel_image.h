// Loads an x86-64 Linux kernel file into guest memory: an ELF vmlinux (PT_LOAD segments at their
// physical addresses, entered at e_entry, which for x86-64 vmlinux is the physical startup_64) or
// a bzImage (boot protocol >= 2.12 with XLF_KERNEL_64: the protected-mode part at 1 MiB, entered
// at 1 MiB + 0x200). Anything else is refused with the reason.
//
// Ownership: reads the file, writes guest memory, keeps nothing.
// Threading: pure functions; call before any vCPU runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/vmm/arch/x86_64/boot_params.h"
#include "agent/vmm/memory.h"
#include "agent/vmm/result.h"

namespace phoenix::vmm::x86 {

inline constexpr uint64_t kBzImageLoadAddress = 0x100000;  // protected-mode kernel: 1 MiB
inline constexpr uint64_t kLowMemoryEnd = 0x100000;        // our boot tables live below this

enum class KernelFormat { kElf, kBzImage };

struct LoadedKernel {
  KernelFormat format = KernelFormat::kElf;
  uint64_t entry = 0;       // 64-bit entry point (guest physical)
  uint64_t load_start = 0;  // guest physical range the kernel occupies, including its bss (ELF)
  uint64_t load_end = 0;    // or its init_size (bzImage): nothing else may be placed there
  // bzImage: its setup header (as far as the file carries one), to become boot_params.hdr.
  std::optional<SetupHeader> setup_header;
};

[[nodiscard]] Result<LoadedKernel> LoadKernel(const GuestMemory& memory, const std::string& path);

}  // namespace phoenix::vmm::x86
