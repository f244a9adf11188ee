// CRC32C (Castagnoli, the iSCSI/ext4 checksum) over byte ranges: the snapshot file's payload
// checksum. A software table implementation, so the format does not depend on SSE4.2 being present
// (the test host's emulated CPU and CI machines may lack it).
//
// Pure function; no threading concerns.
#pragma once

#include <cstdint>
#include <span>

namespace phoenix::vmm {

// `crc` continues an earlier call's result (0 to start), so a stream can be checksummed in pieces.
uint32_t Crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace phoenix::vmm
