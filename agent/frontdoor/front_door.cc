#include "agent/frontdoor/front_door.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/frontdoor/haproxy_runtime.h"
#include "proto/support/unique_fd.h"

namespace phoenix::agent::frontdoor {
namespace {

namespace fs = std::filesystem;

// Present while a config with new frontends is in place but not yet known to be loaded: an agent
// that dies in between must not trust the file's signature when it adopts HAProxy.
fs::path ReloadPendingMarker(const HaproxyFiles& files) { return files.dir / "reload-pending"; }

std::optional<std::string> ReadFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The "# frontends: ..." line RenderConfig writes.
std::optional<std::string> SignatureInFile(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  constexpr std::string_view kPrefix = "# frontends: ";
  for (int i = 0; i < 5 && std::getline(in, line); ++i) {
    if (line.starts_with(kPrefix)) return line.substr(kPrefix.size());
  }
  return std::nullopt;
}

// Writes `text` to `file` through a side file and a rename, fsync'd: a crash leaves the old file
// or the new one, never half of one.
Result<void> WriteAtomically(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open " + tmp.string());
  UniqueFd owned(fd);
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("write " + tmp.string());
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return ErrnoError("fsync " + tmp.string());
  if (::rename(tmp.c_str(), file.c_str()) != 0) return ErrnoError("rename to " + file.string());
  return {};
}

}  // namespace

Result<std::unique_ptr<FrontDoor>> FrontDoor::Start(FrontDoorOptions options) {
  std::error_code ec;
  // HAProxy reads a relative socket path as host:port, and the daemon does not keep our cwd.
  options.files.dir = fs::absolute(options.files.dir, ec);
  if (ec) return Internal("absolute path of " + options.files.dir.string() + ": " + ec.message());
  fs::create_directories(options.files.dir, ec);
  if (ec) return Internal("create " + options.files.dir.string() + ": " + ec.message());
  // Its sockets accept admin commands: only root may even reach them.
  fs::permissions(options.files.dir, fs::perms::owner_all, ec);
  if (ec) return Internal("chmod 0700 " + options.files.dir.string() + ": " + ec.message());
  std::unique_ptr<FrontDoor> door(new FrontDoor(std::move(options)));
  door->worker_ = std::thread([d = door.get()] { d->Run(); });
  return door;
}

FrontDoor::FrontDoor(FrontDoorOptions options)
    : options_(std::move(options)), haproxy_(options_.files, options_.haproxy_binary) {}

FrontDoor::~FrontDoor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Result<void> FrontDoor::Apply(FrontDoorTable table) {
  PHX_TRY(ValidateTable(table));
  {
    std::lock_guard lock(mu_);
    if (table.version <= status_.latest_version) return {};
    status_.latest_version = table.version;
    desired_ = std::move(table);
  }
  cv_.notify_all();
  return {};
}

FrontDoorStatus FrontDoor::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

bool FrontDoor::WaitApplied(uint64_t version, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return status_.applied_version >= version; });
}

void FrontDoor::StopHaproxy() {
  {
    std::lock_guard lock(mu_);
    haproxy_given_up_ = true;
  }
  // The worker may be between checks: take its place by waiting for it to see the flag.
  cv_.notify_all();
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::seconds(30), [&] { return status_.haproxy_pid == -1; });
}

void FrontDoor::Report(const std::string& message) {
  spdlog::info("front door: {}", message);
  if (options_.on_event) options_.on_event(message);
}

void FrontDoor::Run() {
  haproxy_wanted_ = fs::exists(options_.files.pid_file());
  uint64_t seen_version = 0;
  for (;;) {
    std::optional<FrontDoorTable> want;
    bool give_up = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.tick, [&] {
        return stopping_ || haproxy_given_up_ || status_.latest_version != seen_version;
      });
      if (stopping_) return;
      give_up = haproxy_given_up_;
      seen_version = status_.latest_version;
      want = desired_;
    }
    if (give_up) {
      haproxy_.Stop();
      {
        std::lock_guard lock(mu_);
        status_.haproxy_pid = -1;
      }
      cv_.notify_all();
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_; });
      return;
    }
    haproxy_wanted_ = haproxy_wanted_ || (want && !want->services.empty());
    if (!haproxy_wanted_) {
      // Nothing to serve: an empty table is applied by having no HAProxy at all.
      if (want) {
        std::lock_guard lock(mu_);
        status_.applied_version = std::max(status_.applied_version, want->version);
      }
      cv_.notify_all();
      continue;
    }
    EnsureHaproxy();
    if (want && haproxy_.Running()) Sync(*want);
    SampleLoad();
  }
}

void FrontDoor::SampleLoad() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_sample_ < options_.load_interval) return;
  const auto window = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_sample_);
  const bool first = last_sample_ == std::chrono::steady_clock::time_point{};
  last_sample_ = now;
  Result<std::vector<ServerCounters>> counters = Unavailable("HAProxy is not running");
  if (haproxy_.Running()) {
    auto csv = HaproxyRuntime(options_.files.api_socket()).Execute("show stat -1 4 -1");
    counters = csv ? ParseShowStat(*csv)
                   : Result<std::vector<ServerCounters>>(std::unexpected(csv.error()));
  }
  if (!counters) {
    if (haproxy_.Running())
      spdlog::warn("front door: reading HAProxy's stats: {}", counters.error().message);
    last_counters_.clear();
    std::lock_guard lock(mu_);
    load_ = Load{};
    return;
  }
  // The first sample only sets the baseline: HAProxy's counters began long before it.
  std::vector<ServerLoad> servers =
      LoadBetween(first ? *counters : last_counters_, *counters, window);
  last_counters_ = std::move(*counters);
  std::lock_guard lock(mu_);
  load_ =
      Load{.window = first ? std::chrono::milliseconds(0) : window, .servers = std::move(servers)};
}

FrontDoor::Load FrontDoor::load() const {
  std::lock_guard lock(mu_);
  return load_;
}

void FrontDoor::EnsureHaproxy() {
  if (haproxy_.Running()) return;
  const bool first = std::exchange(first_ensure_, false);
  if (first) {
    // A busy host may take a while to answer: a second HAProxy would be worse than waiting.
    if (auto adopted = haproxy_.Adopt(std::chrono::seconds(10)); adopted) {
      loaded_signature_ = fs::exists(ReloadPendingMarker(options_.files))
                              ? std::nullopt
                              : SignatureInFile(options_.files.config());
      {
        std::lock_guard lock(mu_);
        status_.haproxy_pid = haproxy_.pid();
        status_.adopted = true;
      }
      Report(fmt::format("adopted the running HAProxy (pid {})", haproxy_.pid()));
      return;
    } else if (adopted.error().code != ErrorCode::kNotFound) {
      Report("cannot adopt the running HAProxy: " + adopted.error().message);
    }
  } else {
    Report("HAProxy (pid " + std::to_string(status().haproxy_pid) + ") exited; restarting it");
  }
  // Start from the last table applied in full, or whatever config the previous agent left, or an
  // empty front door.
  if (last_good_) {
    (void)WriteConfig(*last_good_, options_.files.config());
  } else if (!fs::exists(options_.files.config())) {
    (void)WriteConfig(FrontDoorTable{}, options_.files.config());
  }
  std::error_code ec;
  fs::remove(ReloadPendingMarker(options_.files), ec);
  auto started = haproxy_.Start();
  std::lock_guard lock(mu_);
  if (!started) {
    status_.haproxy_pid = -1;
    const std::string message = "cannot start HAProxy: " + started.error().message;
    if (status_.last_error != message) {
      status_.last_error = message;
      spdlog::error("front door: {}", message);
      if (options_.on_event) options_.on_event(message);
    }
    return;
  }
  loaded_signature_ = SignatureInFile(options_.files.config());
  status_.haproxy_pid = haproxy_.pid();
  ++status_.starts;
  spdlog::info("front door: HAProxy started (pid {})", haproxy_.pid());
  if (options_.on_event) options_.on_event(fmt::format("HAProxy started (pid {})", haproxy_.pid()));
}

Result<void> FrontDoor::WriteConfig(const FrontDoorTable& table, const fs::path& file) const {
  return WriteAtomically(file, RenderConfig(table, options_.files, options_.settings));
}

namespace {

// Ports in a frontend signature (" name:port:mode" per service): what HAProxy listens on.
std::set<uint16_t> PortsIn(const std::optional<std::string>& signature) {
  std::set<uint16_t> ports;
  if (!signature) return ports;
  std::istringstream in(*signature);
  std::string token;
  in >> token;  // the bind address
  while (in >> token) {
    const size_t first = token.find(':');
    const size_t second = token.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    ports.insert(
        static_cast<uint16_t>(std::atoi(token.substr(first + 1, second - first - 1).c_str())));
  }
  return ports;
}

// Empty when `port` on `address` can be bound now; else why not.
std::string PortProblem(const std::string& address, uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (in_addr v4{}; ::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr = v4;
    length = sizeof(sockaddr_in);
  } else if (in6_addr v6{}; ::inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = v6;
    length = sizeof(sockaddr_in6);
  } else {
    return "bind address " + address + " is not an IP address";
  }
  UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::string("socket: ") + std::strerror(errno);
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) == 0) return "";
  const std::string where = fmt::format("port {} on {}", port, address);
  if (errno == EADDRINUSE) return where + " is taken by another process";
  if (errno == EADDRNOTAVAIL) return where + ": the address is not on this host";
  return where + ": " + std::strerror(errno);
}

}  // namespace

FrontDoorTable FrontDoor::Servable(const FrontDoorTable& desired,
                                   std::vector<BlockedFrontend>& blocked) const {
  // Ports HAProxy may hold: what it loaded, and, when that is unknown (an agent died between
  // writing a config and loading it), also what the config file and the last applied table name.
  // Binding one of those here would fail on HAProxy's own socket and drop a serving frontend.
  std::set<uint16_t> held = PortsIn(loaded_signature_);
  if (!loaded_signature_) {
    held.merge(PortsIn(SignatureInFile(options_.files.config())));
    if (last_good_) {
      for (const FrontDoorService& s : last_good_->services) held.insert(s.port);
    }
  }
  FrontDoorTable servable{.version = desired.version};
  for (const FrontDoorService& s : desired.services) {
    if (!held.contains(s.port)) {
      if (std::string problem = PortProblem(options_.settings.bind_address, s.port);
          !problem.empty()) {
        blocked.push_back(BlockedFrontend{.service = s.name, .port = s.port, .reason = problem});
        continue;
      }
    }
    servable.services.push_back(s);
  }
  return servable;
}

void FrontDoor::Sync(const FrontDoorTable& wanted) {
  if (wanted.version == failed_version_) return;  // HAProxy refused it; wait for a newer one
  std::vector<BlockedFrontend> blocked;
  const FrontDoorTable desired = Servable(wanted, blocked);
  {
    std::lock_guard lock(mu_);
    if (blocked != status_.blocked) {
      for (const BlockedFrontend& b : blocked) {
        if (std::ranges::find(status_.blocked, b) == status_.blocked.end()) {
          spdlog::error("front door: service {} not served here: {}", b.service, b.reason);
          if (options_.on_event)
            options_.on_event("service " + b.service + " not served here: " + b.reason);
        }
      }
      status_.blocked = blocked;
    }
  }
  Result<void> result;
  if (loaded_signature_ != FrontendSignature(desired, options_.settings)) {
    result = SyncFrontends(desired);
    if (!result) failed_version_ = desired.version;
  }
  if (result) result = SyncServers(desired);
  std::string error;
  if (!result) error = fmt::format("table {}: {}", desired.version, result.error().message);
  bool report = false;
  {
    std::lock_guard lock(mu_);
    if (result) {
      // Applied, minus what cannot be served here (status().blocked says what and why).
      status_.applied_version = std::max(status_.applied_version, desired.version);
      last_good_ = desired;
    }
    report = !error.empty() && error != status_.last_error;
    status_.last_error = error;
  }
  cv_.notify_all();
  if (report) {
    spdlog::error("front door: {}", error);
    if (options_.on_event) options_.on_event(error);
  }
}

Result<void> FrontDoor::SyncFrontends(const FrontDoorTable& desired) {
  const fs::path config = options_.files.config();
  const fs::path next = config.string() + ".next";
  PHX_TRY(WriteConfig(desired, next));
  if (auto valid = haproxy_.Check(next); !valid) {
    std::error_code ec;
    fs::remove(next, ec);
    return valid;
  }
  const std::optional<std::string> previous = ReadFile(config);
  const fs::path marker = ReloadPendingMarker(options_.files);
  PHX_TRY(WriteAtomically(marker, "reload pending\n"));
  if (::rename(next.c_str(), config.c_str()) != 0)
    return ErrnoError("rename to " + config.string());
  auto reloaded = haproxy_.Reload();
  if (!reloaded) {
    // The old worker still serves the previous config: the file must say so again, or HAProxy's
    // next start would fail on the same config.
    if (previous) PHX_TRY(WriteAtomically(config, *previous));
    std::error_code ec;
    fs::remove(marker, ec);
    return reloaded;
  }
  std::error_code ec;
  fs::remove(marker, ec);
  loaded_signature_ = FrontendSignature(desired, options_.settings);
  {
    std::lock_guard lock(mu_);
    ++status_.reloads;
  }
  Report(fmt::format("reloaded HAProxy for table {} ({} services)", desired.version,
                     desired.services.size()));
  return {};
}

Result<void> FrontDoor::SyncServers(const FrontDoorTable& desired) {
  const HaproxyRuntime api(options_.files.api_socket());
  for (const FrontDoorService& service : desired.services) {
    auto actual_list = api.Servers(service.name);
    if (!actual_list) return std::unexpected(actual_list.error());
    std::map<std::string, ServerState> actual;
    for (ServerState& s : *actual_list) actual.emplace(s.name, std::move(s));

    for (const FrontDoorServer& want : service.servers) {
      const uint32_t weight = ServerWeight(want, options_.settings);
      auto it = actual.find(want.name);
      if (it != actual.end() &&
          (it->second.address != want.address || it->second.port != want.port)) {
        // Same name, another place: replace it (a replica's name carries its generation, so this
        // is rare).
        PHX_TRY(api.SetAdmin(service.name, want.name, ServerAdmin::kMaint));
        PHX_TRY(api.DeleteServer(service.name, want.name));
        actual.erase(it);
        it = actual.end();
      }
      if (it == actual.end()) {
        PHX_TRY(api.AddServer(service.name, want.name, want.address, want.port, weight,
                              ServerOptions(service.mode)));
        PHX_TRY(api.EnableHealth(service.name, want.name));
        PHX_TRY(api.SetAdmin(service.name, want.name,
                             want.draining ? ServerAdmin::kDrain : ServerAdmin::kReady));
        continue;
      }
      const ServerState& have = it->second;
      if (want.draining) {
        if (!have.draining) PHX_TRY(api.SetAdmin(service.name, want.name, ServerAdmin::kDrain));
      } else {
        if (have.in_maintenance || have.draining) {
          PHX_TRY(api.SetAdmin(service.name, want.name, ServerAdmin::kReady));
        }
        if (have.weight != weight) PHX_TRY(api.SetWeight(service.name, want.name, weight));
      }
      actual.erase(it);
    }
    // What is left is not in the table: no new requests now; deleted once its last connection
    // closed (until then "del server" refuses, and the next tick tries again).
    for (const auto& [name, have] : actual) {
      if (!have.in_maintenance) PHX_TRY(api.SetAdmin(service.name, name, ServerAdmin::kMaint));
      auto deleted = api.DeleteServer(service.name, name);
      if (!deleted && deleted.error().code != ErrorCode::kFailedPrecondition) return deleted;
    }
  }
  if (last_good_ != desired) PHX_TRY(WriteConfig(desired, options_.files.config()));
  return {};
}

}  // namespace phoenix::agent::frontdoor
