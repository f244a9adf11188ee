#include "agent/runtime/libvirt/save_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "agent/runtime/libvirt/domain_xml.h"

namespace phoenix::agent::libvirt {

namespace {

constexpr char kMagic[] = "LibvirtQemudSave";  // 16 bytes, no NUL in the file
constexpr size_t kMagicLen = 16;
constexpr size_t kHeaderLen = kMagicLen + 5 * 4 + 14 * 4;  // 92
constexpr uint32_t kMaxDataLen = 64u << 20;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<void> ReadFull(int fd, void* buf, size_t len, off_t offset, const std::string& what) {
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading " + what);
    }
    if (n == 0) return Internal("reading " + what + ": unexpected end of file");
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<void> WriteFull(int fd, const void* buf, size_t len, const std::string& what) {
  const auto* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("writing " + what);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

uint32_t U32At(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

struct RawHeader {
  std::vector<char> header;  // kHeaderLen bytes
  std::vector<char> data;    // data_len bytes
  SaveImageHeader parsed;
};

Result<RawHeader> ReadRaw(int fd, const std::string& what) {
  RawHeader raw;
  raw.header.resize(kHeaderLen);
  PHX_TRY(ReadFull(fd, raw.header.data(), kHeaderLen, 0, what));
  if (std::memcmp(raw.header.data(), kMagic, kMagicLen) != 0) {
    return FailedPrecondition(what + " is not a complete libvirt QEMU save image (bad magic)");
  }
  SaveImageHeader& h = raw.parsed;
  const char* p = raw.header.data() + kMagicLen;
  h.version = U32At(p);
  h.data_len = U32At(p + 4);
  h.was_running = U32At(p + 8);
  h.compressed = U32At(p + 12);
  h.cookie_offset = U32At(p + 16);
  if (h.version != 2) {
    return FailedPrecondition(what + ": unsupported save image version " +
                              std::to_string(h.version));
  }
  if (h.data_len == 0 || h.data_len > kMaxDataLen || h.cookie_offset >= h.data_len) {
    return FailedPrecondition(what + ": corrupt save image header");
  }
  raw.data.resize(h.data_len);
  PHX_TRY(ReadFull(fd, raw.data.data(), h.data_len, kHeaderLen, what));
  h.xml.assign(raw.data.data(),
               strnlen(raw.data.data(), h.cookie_offset ? h.cookie_offset : h.data_len));
  if (h.cookie_offset != 0) {
    const char* c = raw.data.data() + h.cookie_offset;
    h.cookie.assign(c, strnlen(c, h.data_len - h.cookie_offset));
  }
  return raw;
}

}  // namespace

Result<std::string> ReplaceFirstElement(const std::string& xml, const std::string& tag,
                                        const std::string& text) {
  const std::string open = "<" + tag + ">";
  const std::string close = "</" + tag + ">";
  size_t start = xml.find(open);
  if (start == std::string::npos) return Internal("domain XML has no <" + tag + ">");
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string::npos) return Internal("domain XML has no </" + tag + ">");
  return xml.substr(0, start) + XmlEscape(text) + xml.substr(end);
}

Result<SaveImageHeader> ReadSaveImageHeader(const std::filesystem::path& path) {
  Fd in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return ErrnoError("opening save image " + path.string());
  auto raw = ReadRaw(in.fd, path.string());
  if (!raw) return std::unexpected(raw.error());
  return std::move(raw->parsed);
}

Result<void> CloneSaveImage(const std::filesystem::path& src, const std::filesystem::path& dst,
                            const std::string& name, const std::string& uuid,
                            const std::string& genid) {
  Fd in{::open(src.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return ErrnoError("opening save image " + src.string());
  auto raw = ReadRaw(in.fd, src.string());
  if (!raw) return std::unexpected(raw.error());
  SaveImageHeader& h = raw->parsed;
  if (h.compressed != 0) {
    return FailedPrecondition(src.string() + ": compressed save images cannot be cloned");
  }
  auto xml = ReplaceFirstElement(h.xml, "name", name);
  if (!xml) return std::unexpected(xml.error());
  xml = ReplaceFirstElement(*xml, "uuid", uuid);
  if (!xml) return std::unexpected(xml.error());
  if (!genid.empty()) {
    xml = ReplaceFirstElement(*xml, "genid", genid);
    if (!xml) {
      return std::unexpected(
          xml.error().Wrap("the snapshot has no VM generation id device (made by an older agent)"));
    }
  }

  // New data: xml NUL [cookie NUL] zeros, same total length so the QEMU stream keeps its offset.
  const size_t xml_len = xml->size() + 1;
  const size_t cookie_len = h.cookie_offset != 0 ? h.cookie.size() + 1 : 0;
  if (xml_len + cookie_len > h.data_len) {
    return FailedPrecondition("the renamed domain XML does not fit the save image header of " +
                              src.string());
  }
  std::vector<char> data(h.data_len, '\0');
  std::memcpy(data.data(), xml->c_str(), xml_len);
  if (cookie_len != 0) std::memcpy(data.data() + xml_len, h.cookie.c_str(), cookie_len);
  uint32_t cookie_offset = cookie_len != 0 ? static_cast<uint32_t>(xml_len) : 0;
  std::memcpy(raw->header.data() + kMagicLen + 16, &cookie_offset, 4);

  struct stat st;
  if (::fstat(in.fd, &st) != 0) return ErrnoError("stat " + src.string());
  const off_t stream_at = static_cast<off_t>(kHeaderLen + h.data_len);
  if (st.st_size < stream_at) return FailedPrecondition(src.string() + " is truncated");

  Fd out{::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (out.fd < 0) return ErrnoError("creating " + dst.string());
  auto fail = [&](Error e) -> Result<void> {
    ::unlink(dst.c_str());
    return std::unexpected(std::move(e));
  };
  if (auto r = WriteFull(out.fd, raw->header.data(), kHeaderLen, dst.string()); !r) {
    return fail(r.error());
  }
  if (auto r = WriteFull(out.fd, data.data(), data.size(), dst.string()); !r) {
    return fail(r.error());
  }
  off_t in_off = stream_at;
  off_t out_off = stream_at;
  while (in_off < st.st_size) {
    ssize_t n = ::copy_file_range(in.fd, &in_off, out.fd, &out_off,
                                  static_cast<size_t>(st.st_size - in_off), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrnoError("copying the QEMU stream to " + dst.string()).error());
    }
    if (n == 0)
      return fail(Internal("copying " + src.string() + ": unexpected end of file").error());
  }
  if (::close(std::exchange(out.fd, -1)) != 0) {
    return fail(ErrnoError("closing " + dst.string()).error());
  }
  return {};
}

}  // namespace phoenix::agent::libvirt
