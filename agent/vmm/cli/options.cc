#include "agent/vmm/cli/options.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>
#include <vector>

#include "agent/vmm/memory.h"

namespace phoenix::vmm {
namespace {

constexpr uint32_t kMaxVcpus = 255;  // xAPIC ids in the MADT the boot code writes

template <typename T>
Result<T> ParseNumber(std::string_view flag, std::string_view text, T min, T max) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    return Fail("--" + std::string(flag) + ": \"" + std::string(text) + "\" is not a number");
  if (value < min || value > max)
    return Fail("--" + std::string(flag) + ": " + std::string(text) + " is outside " +
                std::to_string(min) + ".." + std::to_string(max));
  return value;
}

struct FlagSpec {
  std::string_view name;
  bool takes_value;
};

const std::vector<FlagSpec>& FlagsOf(CliCommand command) {
  static const std::vector<FlagSpec> boot = {
      {"kernel", true},       {"initrd", true},      {"cmdline", true},
      {"memory-mib", true},   {"vcpus", true},       {"tap-fd", true},
      {"mac", true},          {"console-log", true}, {"control", true},
      {"ready-marker", true}, {"snapshot-to", true}, {"exit-after-snapshot", false},
      {"ready-fd", true},     {"jail-uid", true},    {"jail-gid", true},
      {"jail-root", true},    {"cgroup", true}};
  static const std::vector<FlagSpec> restore = {
      {"snapshot", true}, {"tap-fd", true},    {"console-log", true},
      {"control", true},  {"ready-fd", true},  {"jail-uid", true},
      {"jail-gid", true}, {"jail-root", true}, {"cgroup", true}};
  static const std::vector<FlagSpec> inspect = {{"snapshot", true}};
  static const std::vector<FlagSpec> none;
  switch (command) {
    case CliCommand::kBoot:
      return boot;
    case CliCommand::kRestore:
      return restore;
    case CliCommand::kInspect:
      return inspect;
    case CliCommand::kHelp:
      return none;
  }
  return none;
}

Status Apply(CliOptions& o, std::string_view flag, std::string_view value) {
  auto set_fd = [&](int& out) -> Status {
    auto v = ParseNumber<int>(flag, value, 0, 1 << 20);
    if (!v) return std::unexpected(v.error());
    out = *v;
    return {};
  };
  if (flag == "kernel")
    o.kernel = value;
  else if (flag == "initrd")
    o.initrd = value;
  else if (flag == "cmdline")
    o.cmdline = value;
  else if (flag == "memory-mib") {
    auto v = ParseNumber<uint64_t>(flag, value, 1, kMaxMemoryBytes >> 20);
    if (!v) return std::unexpected(v.error());
    o.memory_mib = *v;
  } else if (flag == "vcpus") {
    auto v = ParseNumber<uint32_t>(flag, value, 1, kMaxVcpus);
    if (!v) return std::unexpected(v.error());
    o.vcpus = *v;
  } else if (flag == "tap-fd")
    return set_fd(o.tap_fd);
  else if (flag == "ready-fd")
    return set_fd(o.ready_fd);
  else if (flag == "mac") {
    auto m = ParseMac(value);
    if (!m) return std::unexpected(m.error());
    o.mac = *m;
  } else if (flag == "console-log")
    o.console_log = value;
  else if (flag == "control")
    o.control_socket = value;
  else if (flag == "ready-marker")
    o.ready_marker = value;
  else if (flag == "snapshot-to")
    o.snapshot_to = value;
  else if (flag == "exit-after-snapshot")
    o.exit_after_snapshot = true;
  else if (flag == "snapshot")
    o.snapshot = value;
  else if (flag == "jail-uid" || flag == "jail-gid") {
    auto v = ParseNumber<uint32_t>(flag, value, 1, 0xfffffffeu);
    if (!v) return std::unexpected(v.error());
    (flag == "jail-uid" ? o.jail_uid : o.jail_gid) = *v;
  } else if (flag == "jail-root")
    o.jail_root = value;
  else if (flag == "cgroup")
    o.cgroups.emplace_back(value);
  return {};
}

}  // namespace

Result<std::array<uint8_t, 6>> ParseMac(std::string_view text) {
  std::array<uint8_t, 6> mac{};
  auto bad = [&] {
    return Fail("--mac: \"" + std::string(text) + "\" is not a MAC address like 06:00:ac:10:00:02");
  };
  if (text.size() != 17) return bad();
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return bad();
    auto [end, ec] = std::from_chars(text.data() + i * 3, text.data() + i * 3 + 2, mac[i], 16);
    if (ec != std::errc() || end != text.data() + i * 3 + 2) return bad();
  }
  if (mac[0] & 1) return Fail("--mac: " + std::string(text) + " is a multicast address");
  return mac;
}

Result<CliOptions> ParseCommandLine(std::span<const std::string_view> args) {
  CliOptions o;
  if (args.empty()) return Fail("no command given (boot, restore or inspect); see --help");
  const std::string_view command = args[0];
  if (command == "--help" || command == "-h" || command == "help") return o;
  if (command == "boot")
    o.command = CliCommand::kBoot;
  else if (command == "restore")
    o.command = CliCommand::kRestore;
  else if (command == "inspect")
    o.command = CliCommand::kInspect;
  else
    return Fail("unknown command \"" + std::string(command) + "\"; see --help");

  std::set<std::string_view> seen;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      o.command = CliCommand::kHelp;
      return o;
    }
    if (!arg.starts_with("--"))
      return Fail(std::string(command) + ": unexpected argument \"" + std::string(arg) + "\"");
    arg.remove_prefix(2);
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const auto& flags = FlagsOf(o.command);
    auto spec =
        std::find_if(flags.begin(), flags.end(), [&](const FlagSpec& f) { return f.name == name; });
    if (spec == flags.end())
      return Fail(std::string(command) + " does not take --" + std::string(name) + "; see --help");
    if (!seen.insert(spec->name).second && spec->name != "cgroup")
      return Fail("--" + std::string(name) + " given twice");
    if (spec->takes_value && !value) {
      if (i + 1 >= args.size()) return Fail("--" + std::string(name) + " needs a value");
      value = args[++i];
    }
    if (!spec->takes_value && value) return Fail("--" + std::string(name) + " takes no value");
    if (auto s = Apply(o, spec->name, value.value_or("")); !s) return std::unexpected(s.error());
  }

  switch (o.command) {
    case CliCommand::kBoot:
      if (o.kernel.empty()) return Fail("boot needs --kernel PATH");
      if (!o.snapshot_to.empty() && o.ready_marker.empty())
        return Fail("--snapshot-to needs --ready-marker (the snapshot is taken when it appears)");
      if (o.exit_after_snapshot && o.snapshot_to.empty())
        return Fail("--exit-after-snapshot needs --snapshot-to");
      break;
    case CliCommand::kRestore:
    case CliCommand::kInspect:
      if (o.snapshot.empty()) return Fail(std::string(command) + " needs --snapshot DIR");
      break;
    case CliCommand::kHelp:
      break;
  }
  if (o.tap_fd >= 0 && o.tap_fd == o.ready_fd)
    return Fail("--tap-fd and --ready-fd are the same fd");
  const int jail_flags = (o.jail_uid != 0) + (o.jail_gid != 0) + !o.jail_root.empty();
  if (jail_flags != 0 && jail_flags != 3)
    return Fail("--jail-uid, --jail-gid and --jail-root come together");
  if (!o.cgroups.empty() && !o.jailed()) return Fail("--cgroup needs the jail (--jail-*)");
  return o;
}

std::string UsageText() {
  return R"(phoenix-vmm: Phoenix's micro-VM monitor (one process per micro-VM, raw KVM ioctls)

Usage:
  phoenix-vmm boot --kernel PATH [--initrd PATH] [--cmdline STR] [--memory-mib 128] [--vcpus 1]
      [--tap-fd N] [--mac 06:00:ac:10:00:02] [--console-log PATH] [--control SOCKET]
      [--ready-marker STR [--snapshot-to DIR [--exit-after-snapshot]]] [--ready-fd N] [JAIL]
  phoenix-vmm restore --snapshot DIR [--tap-fd N] [--console-log PATH] [--control SOCKET]
      [--ready-fd N] [JAIL]
  JAIL: --jail-uid UID --jail-gid GID --jail-root DIR [--cgroup DIR]...
  phoenix-vmm inspect --snapshot DIR

boot     cold-boots an x86-64 Linux kernel (ELF vmlinux or bzImage) with an optional initramfs.
restore  resumes a snapshot: its memory is mapped copy-on-write, so nothing the guest writes ever
         reaches the snapshot and restore cost does not grow with guest memory.
inspect  validates a snapshot (checksum, version, sizes) and prints what it holds.

Flags:
  --kernel PATH         guest kernel
  --initrd PATH         initramfs loaded near the top of RAM below 4 GiB
  --cmdline STR         kernel command line, passed as is (add console=ttyS0 to see a console)
  --memory-mib N        guest RAM, 1..3072 MiB (default 128)
  --vcpus N             vCPUs, 1..255 (default 1)
  --tap-fd N            an open tap fd (IFF_TAP|IFF_NO_PI) inherited from the caller; adds a
                        virtio-net device (restore: only if the snapshot has one)
  --mac MAC             the virtio-net MAC (boot only; a restore keeps the snapshot's)
  --console-log PATH    append the guest's serial console to PATH (default: stdout)
  --control SOCKET      serve the control socket (created 0600) at SOCKET
  --ready-marker STR    watch the console for STR (it may arrive split across writes)
  --snapshot-to DIR     when the marker appears: pause, write a snapshot into DIR, then resume
  --exit-after-snapshot ... or exit 0 instead of resuming (making a golden snapshot)
  --ready-fd N          write exactly one line to fd N, then close it:
                          ready setup_us=U                     vCPUs started (restore, or boot
                                                               without --ready-marker)
                          ready setup_us=U marker_ms=M [snapshot=DIR]
                                                               the marker appeared (and the
                                                               snapshot is written)
                          error MESSAGE                        it failed
                        setup_us: Boot()/Restore() entry to the first KVM_RUN; marker_ms: boot
                        start to the marker.

Jail (as root; Phoenix's agent always uses it), before the guest's first instruction:
  --cgroup DIR          join this cgroup directory first (repeat for each v1 hierarchy)
  --jail-root DIR       an empty directory: a tmpfs is mounted there in the monitor's own mount,
                        IPC and network namespaces and becomes its root, holding only the kernel
                        and initrd or the snapshot (read-only), --snapshot-to (read-write) and
                        /dev/kvm. The console log, control socket and tap are opened before.
  --jail-uid UID, --jail-gid GID
                        then run as this unprivileged uid/gid (its /dev/kvm node is its own), with
                        no groups, no capabilities and no_new_privs, and a
                        seccomp filter per thread kind (control, vCPU, device). A forbidden
                        syscall ends the monitor with SIGSYS after one line on stderr naming it.

Control socket (one request line -> one reply line, "ok[ key=value]..." or "error MESSAGE"):
  ping | pause | resume | snapshot DIR (pauses, writes, stays paused) | stop | stats
  stats keys: state=running|paused vcpus memory_mib guest_resident_kib monitor_rss_kib
              monitor_overhead_kib exits setup_us restored=0|1 uptime_ms

Exit status: 0 the guest shut down or was stopped (stop, SIGTERM, SIGINT); 2 the guest asked for
a reset (the caller restarts it); 1 an error (one line on stderr: "phoenix-vmm: MESSAGE").

Examples:
  # Boot the demo image with its console on the terminal:
  phoenix-vmm boot --kernel out/vmlinux --initrd out/initrd.img --cmdline "console=ttyS0 quiet"

  # Make a golden snapshot: boot until the guest prints its ready line, snapshot, exit:
  phoenix-vmm boot --kernel out/vmlinux --initrd out/initrd.img \
      --cmdline "console=ttyS0 phoenix.ip=172.16.0.2/30 phoenix.gw=172.16.0.1" \
      --ready-marker "phoenix-demo ready" --snapshot-to /var/lib/phoenix/golden/demo \
      --exit-after-snapshot --ready-fd 3 3>ready.txt
  # (with networking, the caller opens a tap with TUNSETIFF and passes it: --tap-fd N)

  # Start a clone from it with a control socket, then ask it for its figures (any Unix-socket
  # client speaks the protocol, e.g. socat from Debian's socat package):
  phoenix-vmm restore --snapshot /var/lib/phoenix/golden/demo --control /run/vm1.sock &
  printf 'stats\n' | socat - UNIX-CONNECT:/run/vm1.sock

  # Check a snapshot before trusting it:
  phoenix-vmm inspect --snapshot /var/lib/phoenix/golden/demo
)";
}

}  // namespace phoenix::vmm
