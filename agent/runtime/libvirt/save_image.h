// SaveImage: per-instance clones of a libvirt QEMU save image (virDomainSaveFlags output) under a
// new domain name and UUID.
//
// Why: libvirt 9.0 refuses to restore a save image as a domain with another name or UUID
// (virDomainRestoreFlags with a dxml: "Target domain name 'b' does not match source 'a'", "Target
// domain uuid ... does not match source ..."), and two domains with one name/UUID cannot run at
// once. Everything else in dxml (disk and serial paths, the qemu:commandline hostfwd rules) may
// differ. So each restore gets its own copy of the golden save image whose header XML carries the
// instance's name and UUID; libvirt then still checks the instance's full XML against it (ABI
// stability) on restore. The QEMU migration stream after the header is copied with
// copy_file_range (in-kernel; ~80-100 ms for a 256 MiB guest's 64 MiB image on ext4 here).
//
// Format (libvirt src/qemu/qemu_saveimage.h, version 2, host byte order): 16-byte magic
// "LibvirtQemudSave", u32 version, u32 data_len, u32 was_running, u32 compressed, u32 cookieOffset,
// u32 unused[14]; then data_len bytes: XML + NUL, the migration cookie + NUL at cookieOffset, zero
// padding; then the QEMU stream. libvirt pads data generously so the XML can be rewritten in place.
//
// Thread-safety: stateless functions.
#pragma once

#include <filesystem>
#include <string>

#include "proto/support/error.h"

namespace phoenix::agent::libvirt {

struct SaveImageHeader {
  uint32_t version = 0;
  uint32_t data_len = 0;
  uint32_t was_running = 0;
  uint32_t compressed = 0;
  uint32_t cookie_offset = 0;
  std::string xml;
  std::string cookie;
};

Result<SaveImageHeader> ReadSaveImageHeader(const std::filesystem::path& path);

// Writes `dst` (mode 0600): `src` with the domain <name>, <uuid> and (when `genid` is not empty)
// <genid> of its header XML replaced. A new generation id is how a clone learns it is one: QEMU's
// vmgenid device hands it to the guest on restore and the guest kernel reseeds its RNG. Fails
// (and leaves no `dst`) when src is not an uncompressed version-2 save image, has no <genid> to
// replace, or the new XML does not fit the header's space.
Result<void> CloneSaveImage(const std::filesystem::path& src, const std::filesystem::path& dst,
                            const std::string& name, const std::string& uuid,
                            const std::string& genid = {});

// The XML with the text of its first <tag>...</tag> replaced (tag given without brackets).
Result<std::string> ReplaceFirstElement(const std::string& xml, const std::string& tag,
                                        const std::string& text);

}  // namespace phoenix::agent::libvirt
