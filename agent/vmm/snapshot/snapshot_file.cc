#include "agent/vmm/snapshot/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include "agent/vmm/snapshot/codec.h"
#include "agent/vmm/snapshot/crc32c.h"

namespace phoenix::vmm {
namespace {

constexpr char kMagic[8] = {'P', 'H', 'X', 'S', 'N', 'A', 'P', '\0'};
// magic, u32 version, u32 flags, u64 payload length, u32 CRC32C of the payload.
constexpr size_t kHeaderBytes = sizeof kMagic + 4 + 4 + 8 + 4;

// Bounds that no real machine reaches; they keep a corrupt count from turning into a huge
// allocation before the checksum (already verified) or the structure check catches it.
constexpr uint32_t kMaxVcpus = 1024;        // KVM_MAX_VCPUS on x86-64
constexpr uint32_t kMaxMsrs = 4096;         // far above KVM_GET_MSR_INDEX_LIST's few hundred
constexpr uint32_t kMaxCpuidEntries = 256;  // KVM_MAX_CPUID_ENTRIES
constexpr uint32_t kMaxDevices = 256;
constexpr uint64_t kMaxStateFileBytes = 64ull << 20;

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Checks shared by writing and reading: a snapshot that would be refused on read is never written.
Status Validate(const MachineState& state) {
  const MachineShape& shape = state.shape;
  if (shape.vcpus == 0) return Fail("impossible machine: zero vCPUs");
  if (shape.vcpus > kMaxVcpus)
    return Fail("impossible machine: " + std::to_string(shape.vcpus) + " vCPUs (at most " +
                std::to_string(kMaxVcpus) + ")");
  if (state.vcpus.size() != shape.vcpus)
    return Fail("machine has " + std::to_string(shape.vcpus) + " vCPUs but the state holds " +
                std::to_string(state.vcpus.size()));
  if (shape.memory_bytes == 0 || shape.memory_bytes % kPageSize != 0)
    return Fail("impossible memory size " + std::to_string(shape.memory_bytes) +
                " bytes: not a positive multiple of the " + std::to_string(kPageSize) +
                "-byte page");
  if (shape.memory_bytes > kMaxMemoryBytes)
    return Fail("impossible memory size " + std::to_string(shape.memory_bytes) +
                " bytes: above the maximum " + std::to_string(kMaxMemoryBytes));
  for (size_t i = 0; i < state.vcpus.size(); ++i) {
    const VcpuState& v = state.vcpus[i];
    if (v.msrs.size() > kMaxMsrs)
      return Fail("vCPU " + std::to_string(i) + " has " + std::to_string(v.msrs.size()) + " MSRs");
    if (v.cpuid.size() > kMaxCpuidEntries)
      return Fail("vCPU " + std::to_string(i) + " has " + std::to_string(v.cpuid.size()) +
                  " CPUID entries");
  }
  for (uint32_t i = 0; i < state.irqchips.size(); ++i) {
    // KVM_SET_IRQCHIP picks the chip by chip_id: a shuffled array would load the IOAPIC's state
    // into a PIC.
    if (state.irqchips[i].chip_id != i)
      return Fail("irqchip " + std::to_string(i) + " has chip_id " +
                  std::to_string(state.irqchips[i].chip_id));
  }
  if (state.devices.size() > kMaxDevices)
    return Fail(std::to_string(state.devices.size()) + " devices");
  std::set<std::string> names;
  for (const DeviceStateBlob& d : state.devices) {
    if (d.name.empty()) return Fail("a device state has an empty name");
    if (!names.insert(d.name).second) return Fail("device state \"" + d.name + "\" appears twice");
  }
  return {};
}

template <typename T>
Status GetInto(StateReader& r, T& out) {
  auto v = r.Get<T>();
  if (!v) return std::unexpected(v.error());
  out = *v;
  return {};
}

Result<uint32_t> GetCount(StateReader& r, uint32_t max, std::string_view what) {
  auto n = r.Get<uint32_t>();
  if (!n) return std::unexpected(n.error());
  if (*n > max)
    return Fail(std::string(what) + " count " + std::to_string(*n) + " above the limit " +
                std::to_string(max));
  return *n;
}

Status DecodePayload(std::span<const uint8_t> payload, MachineState& state) {
  StateReader r(payload);
#define PHX_GET(field) \
  if (auto s = GetInto(r, field); !s) return s
  PHX_GET(state.shape.vcpus);
  PHX_GET(state.shape.memory_bytes);
  uint8_t has_net = 0;
  PHX_GET(has_net);
  if (has_net > 1) return Fail("has_net flag is " + std::to_string(has_net));
  state.shape.has_net = has_net == 1;
  PHX_GET(state.shape.mac);

  auto vcpus = GetCount(r, kMaxVcpus, "vCPU");
  if (!vcpus) return std::unexpected(vcpus.error());
  state.vcpus.resize(*vcpus);
  for (VcpuState& v : state.vcpus) {
    PHX_GET(v.regs);
    PHX_GET(v.sregs);
    // kvm_xsave cannot be a std::expected value (flexible array member): read its bytes.
    std::array<uint8_t, sizeof(kvm_xsave)> xsave;
    PHX_GET(xsave);
    std::memcpy(&v.xsave, xsave.data(), sizeof xsave);
    PHX_GET(v.xcrs);
    PHX_GET(v.lapic);
    PHX_GET(v.events);
    PHX_GET(v.mp_state);
    PHX_GET(v.debugregs);
    auto msrs = GetCount(r, kMaxMsrs, "MSR");
    if (!msrs) return std::unexpected(msrs.error());
    v.msrs.resize(*msrs);
    for (kvm_msr_entry& e : v.msrs) PHX_GET(e);
    auto cpuid = GetCount(r, kMaxCpuidEntries, "CPUID entry");
    if (!cpuid) return std::unexpected(cpuid.error());
    v.cpuid.resize(*cpuid);
    for (kvm_cpuid_entry2& e : v.cpuid) PHX_GET(e);
    PHX_GET(v.tsc_khz);
  }
  for (kvm_irqchip& chip : state.irqchips) PHX_GET(chip);
  PHX_GET(state.pit);
  PHX_GET(state.clock);
  auto devices = GetCount(r, kMaxDevices, "device");
  if (!devices) return std::unexpected(devices.error());
  state.devices.resize(*devices);
  for (DeviceStateBlob& d : state.devices) {
    auto name = r.GetString();
    if (!name) return std::unexpected(name.error());
    d.name = std::move(*name);
    auto blob = r.GetBytes();
    if (!blob) return std::unexpected(blob.error());
    d.state = std::move(*blob);
  }
#undef PHX_GET
  if (!r.AtEnd())
    return Fail(std::to_string(r.remaining()) + " unexpected bytes after the last device");
  return Validate(state);
}

void PutHeader(std::vector<uint8_t>& out, uint32_t version, uint32_t flags, uint64_t length,
               uint32_t crc) {
  StateWriter w;
  w.Put(kMagic);
  w.Put(version);
  w.Put(flags);
  w.Put(length);
  w.Put(crc);
  out.insert(out.begin(), w.bytes().begin(), w.bytes().end());
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // close() reports deferred write errors (NFS, quota), so the writer checks it.
  Status Close(std::string_view what) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Errno(std::string("close ") + std::string(what));
    return {};
  }

 private:
  int fd_;
};

Status WriteAll(int fd, std::span<const uint8_t> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write " + path);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("open directory " + dir);
  if (::fsync(fd.get()) != 0) return Errno("fsync directory " + dir);
  return fd.Close(dir);
}

Result<std::vector<uint8_t>> ReadStateFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return Fail(path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxStateFileBytes)
    return Fail(path + " is " + std::to_string(st.st_size) + " bytes, above the limit of " +
                std::to_string(kMaxStateFileBytes));
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("read " + path);
    }
    if (n == 0) break;  // shrank underneath us: decode reports the truncation
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace

std::vector<uint8_t> EncodeMachineState(const MachineState& state) {
  StateWriter w;
  w.Put(state.shape.vcpus);
  w.Put(state.shape.memory_bytes);
  w.Put(static_cast<uint8_t>(state.shape.has_net ? 1 : 0));
  w.Put(state.shape.mac);
  w.Put(static_cast<uint32_t>(state.vcpus.size()));
  for (const VcpuState& v : state.vcpus) {
    w.Put(v.regs);
    w.Put(v.sregs);
    w.Put(v.xsave);
    w.Put(v.xcrs);
    w.Put(v.lapic);
    w.Put(v.events);
    w.Put(v.mp_state);
    w.Put(v.debugregs);
    w.Put(static_cast<uint32_t>(v.msrs.size()));
    for (const kvm_msr_entry& e : v.msrs) w.Put(e);
    w.Put(static_cast<uint32_t>(v.cpuid.size()));
    for (const kvm_cpuid_entry2& e : v.cpuid) w.Put(e);
    w.Put(v.tsc_khz);
  }
  for (const kvm_irqchip& chip : state.irqchips) w.Put(chip);
  w.Put(state.pit);
  w.Put(state.clock);
  w.Put(static_cast<uint32_t>(state.devices.size()));
  for (const DeviceStateBlob& d : state.devices) {
    w.PutString(d.name);
    w.PutBytes(d.state);
  }
  std::vector<uint8_t> out = w.Take();
  const uint64_t length = out.size();
  PutHeader(out, kSnapshotFormatVersion, 0, length, Crc32c(out));
  return out;
}

Result<MachineState> DecodeMachineState(std::span<const uint8_t> file_bytes) {
  if (file_bytes.size() < kHeaderBytes)
    return Fail("state file truncated: " + std::to_string(file_bytes.size()) +
                " bytes, the header alone is " + std::to_string(kHeaderBytes));
  StateReader header(file_bytes.first(kHeaderBytes));
  auto magic = header.Get<std::array<char, sizeof kMagic>>();
  auto version = header.Get<uint32_t>();
  auto flags = header.Get<uint32_t>();
  auto length = header.Get<uint64_t>();
  auto crc = header.Get<uint32_t>();
  if (!magic || !version || !flags || !length || !crc) return Fail("state file header unreadable");
  if (std::memcmp(magic->data(), kMagic, sizeof kMagic) != 0)
    return Fail("not a phoenix-vmm snapshot state file (bad magic)");
  if (*version != kSnapshotFormatVersion)
    return Fail("snapshot format version " + std::to_string(*version) +
                " is not supported (this phoenix-vmm reads version " +
                std::to_string(kSnapshotFormatVersion) + ")");
  if (*flags != 0) return Fail("snapshot has unknown flags " + Hex(*flags));
  const uint64_t have = file_bytes.size() - kHeaderBytes;
  if (have < *length)
    return Fail("state file truncated: header says the payload is " + std::to_string(*length) +
                " bytes, the file holds " + std::to_string(have));
  if (have > *length)
    return Fail("state file overlong: " + std::to_string(have - *length) +
                " bytes after the payload");
  std::span<const uint8_t> payload = file_bytes.subspan(kHeaderBytes);
  const uint32_t actual = Crc32c(payload);
  if (actual != *crc)
    return Fail("state file checksum mismatch (header " + Hex(*crc) + ", payload " + Hex(actual) +
                "): the file is corrupt");
  MachineState state;
  if (auto s = DecodePayload(payload, state); !s)
    return std::unexpected(Context("state payload", s.error()));
  return state;
}

Status WriteSnapshot(const std::string& dir, const MachineState& state, const GuestMemory& memory) {
  auto fail = [&](Error e) { return std::unexpected(Context("write snapshot " + dir, e)); };
  if (auto s = Validate(state); !s) return fail(s.error());
  if (state.shape.memory_bytes != memory.size())
    return fail(Error{0, "state records " + std::to_string(state.shape.memory_bytes) +
                             " bytes of memory, guest memory is " + std::to_string(memory.size())});
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Error{ec.value(), "create directory: " + ec.message()});

  const std::string state_path = dir + "/" + kStateFileName;
  // An old state file next to a half-written new memory file would look like a complete
  // snapshot: remove it (durably) before touching memory.raw.
  if (::unlink(state_path.c_str()) == 0) {
    if (auto s = FsyncDir(dir); !s) return fail(s.error());
  } else if (errno != ENOENT) {
    return fail(Errno("unlink " + state_path).error());
  }
  if (auto s = memory.WriteToFile(dir + "/" + kMemoryFileName); !s) return fail(s.error());

  const std::vector<uint8_t> bytes = EncodeMachineState(state);
  const std::string tmp_path = state_path + ".tmp";
  Fd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) return fail(Errno("create " + tmp_path).error());
  if (auto s = WriteAll(fd.get(), bytes, tmp_path); !s) {
    ::unlink(tmp_path.c_str());
    return fail(s.error());
  }
  if (::fsync(fd.get()) != 0) {
    auto e = Errno("fsync " + tmp_path);
    ::unlink(tmp_path.c_str());
    return fail(e.error());
  }
  if (auto s = fd.Close(tmp_path); !s) {
    ::unlink(tmp_path.c_str());
    return fail(s.error());
  }
  if (::rename(tmp_path.c_str(), state_path.c_str()) != 0) {
    auto e = Errno("rename " + tmp_path + " to " + state_path);
    ::unlink(tmp_path.c_str());
    return fail(e.error());
  }
  if (auto s = FsyncDir(dir); !s) return fail(s.error());
  return {};
}

Result<MachineState> ReadSnapshotState(const std::string& dir) {
  auto fail = [&](Error e) { return std::unexpected(Context("snapshot " + dir, e)); };
  auto bytes = ReadStateFile(dir + "/" + kStateFileName);
  if (!bytes) return fail(bytes.error());
  auto state = DecodeMachineState(*bytes);
  if (!state) return fail(state.error());
  const std::string memory_path = dir + "/" + kMemoryFileName;
  struct stat st {};
  if (::stat(memory_path.c_str(), &st) != 0)
    return fail(Errno("memory file " + memory_path).error());
  if (!S_ISREG(st.st_mode)) return fail(Error{0, memory_path + " is not a regular file"});
  if (static_cast<uint64_t>(st.st_size) != state->shape.memory_bytes)
    return fail(Error{0, "memory file " + memory_path + " is " + std::to_string(st.st_size) +
                             " bytes, the state records " +
                             std::to_string(state->shape.memory_bytes)});
  return state;
}

}  // namespace phoenix::vmm
