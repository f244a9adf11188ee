// `phoenixctl guest ...`: run, list, show, start, stop, remove, kill guests and read their console
// logs. Also the parsers and renderers of guest specs and guests that the bench and `service
// create` reuse (GuestSpecFlags: the one definition of the flags that describe what a guest runs).
//
// Threading: functions run on the caller's thread; see cli.h for the Context rules.
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunGuestGroup(Context& ctx, std::span<const std::string> args);

// The flags that say what a guest runs, shared by `guest run` and `service create`:
// --image, --runtime, --cpus, --memory, --publish, --health-http, --health-tcp, --health-interval,
// --restart, --boot, --env and the command after `--`. Register() binds them to this object, which
// must outlive the FlagSet's parse; Apply() then checks them together and fills a GuestSpec (all
// but its name). Its errors are usage errors naming the flag.
class GuestSpecFlags {
 public:
  void Register(FlagSet& flags);
  [[nodiscard]] Result<void> Apply(const FlagSet::Parsed& parsed, v1::GuestSpec* spec) const;

  // The help lines of these flags, for the commands' --help texts.
  static constexpr std::string_view kHelp =
      R"(  --image IMG                  golden image: name, name:tag or sha256:<id> (required; see 'phoenixctl image ls')
  --runtime vm|microvm|container
                               how to run it (default: the agent's default, vm: libvirt/QEMU,
                               KVM when usable, else TCG)
  --cpus N                     virtual CPUs (default 1)
  --memory SIZE                memory: MiB (256), or with a unit (256M, 1G) (default 256 MiB)
  --publish [[HOSTIP:]HOSTPORT:]GUESTPORT
                               forward a host port to a guest port; repeatable. HOSTPORT 0 or
                               omitted: the agent picks a free port. HOSTIP default 127.0.0.1
  --health-http PORT[/PATH]    HTTP health check: GET PATH on guest port PORT must answer 2xx/3xx
                               (PATH default /health). The port must also be published.
  --health-tcp PORT            TCP health check: guest port PORT must accept connections
  --health-interval DURATION   time between probes (default 1s; minimum 100ms)
  --health-restart-after DURATION
                               how long a guest may stay unhealthy (3 failed probes in a row)
                               before it is restarted; meanwhile it runs on but leaves its
                               service's endpoints, so an overloaded replica can recover
                               (default 10s; 0s: restart at once; at most 1h)
  --restart always|on-failure|never
                               restart policy (default always; on-failure skips clean exits)
  --boot auto|cold|snapshot    auto (default): restore the image's golden snapshot when there is
                               one, else boot cold; cold: always boot the kernel; snapshot:
                               restore the snapshot (made on first use) or fail
  --env K=V                    environment variable (containers only); repeatable
  -- COMMAND...                command to run instead of the image's (containers only)
)";

 private:
  std::string image_;
  std::optional<v1::Runtime> runtime_;
  std::optional<uint64_t> cpus_;
  std::optional<uint64_t> memory_mib_;
  std::vector<std::string> publish_;
  std::vector<std::string> env_;
  std::string health_http_;
  std::optional<uint64_t> health_tcp_;
  std::optional<std::chrono::milliseconds> health_interval_;
  std::optional<std::chrono::milliseconds> health_restart_after_;
  std::optional<v1::RestartPolicy> restart_;
  std::optional<v1::BootMode> boot_;
};

// "[[HOSTIP:]HOSTPORT:]GUESTPORT": "80", "8080:80", "127.0.0.1:8080:80". host port 0 or absent
// lets the agent pick.
[[nodiscard]] Result<v1::PortMapping> ParsePublish(std::string_view text);
// "PORT[/PATH]": "80" (path left to the agent's default /health), "80/healthz".
[[nodiscard]] Result<v1::HttpProbe> ParseHttpProbe(std::string_view text);

// NAME RUNTIME STATE HEALTH RESTARTS ENDPOINT IMAGE AGE
void RenderGuestTable(std::span<const v1::Guest> guests, std::chrono::system_clock::time_point now,
                      std::ostream& out);
// One "Key: value" line per fact, for `guest show` and `guest run`.
void RenderGuestDetail(const v1::Guest& guest, std::ostream& out);
// The load rows of `guest show` ("CPU", "Memory used", "Requests", "Latency"), also for other
// commands that print a guest's GuestMetrics. A measurement whose *_valid flag is false prints as
// "not measured", never as 0. `vcpus` is the guest's allowance (0 = the default 1).
std::vector<std::pair<std::string, std::string>> MetricsRows(const v1::GuestMetrics& metrics,
                                                             uint32_t vcpus);
// "healthy", "unhealthy" or "-" (not running, or no health check).
std::string HealthColumn(const v1::Guest& guest);

}  // namespace phoenix::ctl
