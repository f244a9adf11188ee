#include "tools/phoenixctl/service_render.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "tools/phoenixctl/guest_commands.h"

namespace phoenix::ctl {
namespace {

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string ReplicaHealth(const v1::Replica& replica, bool has_health_check) {
  if (!has_health_check || replica.guest_state() != v1::GUEST_STATE_RUNNING) return "-";
  return YesNo(replica.healthy());
}

std::string ReplicaEndpoints(const v1::Replica& replica) {
  std::string text;
  for (const v1::Endpoint& endpoint : replica.endpoints()) {
    if (!text.empty()) text += ",";
    text += EndpointUrl(endpoint);
  }
  return text.empty() ? "-" : text;
}

// "cpu 12% 35.2 rps", or "-" when nothing was measured.
std::string ReplicaLoad(const v1::Replica& replica) {
  if (!replica.has_metrics()) return "-";
  const v1::GuestMetrics& m = replica.metrics();
  std::string text;
  char buf[64];
  if (m.cpu_valid()) {
    std::snprintf(buf, sizeof buf, "cpu %.0f%%", m.cpu_percent());
    text = buf;
  }
  if (m.requests_valid()) {
    std::snprintf(buf, sizeof buf, "%.1f rps", m.requests_per_second());
    text += (text.empty() ? "" : " ") + std::string(buf);
  }
  return text.empty() ? "-" : text;
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

}  // namespace

std::string ReplicaStateName(v1::ReplicaState state) {
  switch (state) {
    case v1::REPLICA_STATE_PENDING:
      return "pending";
    case v1::REPLICA_STATE_ASSIGNED:
      return "assigned";
    case v1::REPLICA_STATE_RUNNING:
      return "running";
    case v1::REPLICA_STATE_LOST:
      return "lost";
    default:
      return "-";
  }
}

std::string AutoscaleValueText(const std::string& metric, double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, value, metric == "cpu" ? "%" : " rps");
  return buf;
}

std::string AutoscalePolicyText(const v1::AutoscalePolicy& p) {
  char tolerance[32];
  std::snprintf(tolerance, sizeof tolerance, "%g%%", p.tolerance() * 100);
  return "min " + std::to_string(p.min_replicas()) + ", max " + std::to_string(p.max_replicas()) +
         ", target " + p.metric() + " " + AutoscaleValueText(p.metric(), p.target(), 0) +
         " per replica (±" + tolerance + "), scale-down window " +
         std::to_string(p.scale_down_stabilization_s()) + "s";
}

std::string SpreadText(const v1::Spread& spread) {
  if (spread.attribute().empty()) return "-";
  return spread.attribute() + " (max skew " +
         std::to_string(spread.max_skew() == 0 ? 1 : spread.max_skew()) + ")";
}

void RenderServiceTable(std::span<const v1::Service> services,
                        std::chrono::system_clock::time_point now, std::ostream& out) {
  Table table({"NAME", "RUNTIME", "IMAGE", "REPLICAS", "SPREAD", "AGE"});
  for (const v1::Service& service : services) {
    const v1::ServiceSpec& spec = service.spec();
    table.AddRow({spec.name(), RuntimeName(spec.template_().runtime()), spec.template_().image(),
                  std::to_string(service.running()) + "/" + std::to_string(spec.replicas()),
                  SpreadText(spec.spread()), FormatAge(service.created_at(), now)});
  }
  table.Render(out);
}

void RenderServiceDetail(const v1::Service& service, std::ostream& out) {
  const v1::ServiceSpec& spec = service.spec();
  const v1::GuestSpec& guest = spec.template_();
  std::vector<std::pair<std::string, std::string>> rows;
  auto add = [&rows](std::string key, std::string value) {
    rows.emplace_back(std::move(key), value.empty() ? "-" : std::move(value));
  };
  add("Name", spec.name());
  add("Version", std::to_string(service.version()));
  add("Image", guest.image());
  add("Runtime", RuntimeName(guest.runtime()));
  add("Replicas", std::to_string(service.running()) + " running of " +
                      std::to_string(spec.replicas()) + " desired");
  if (spec.has_autoscale()) {
    const v1::AutoscalePolicy& p = spec.autoscale();
    add("Autoscale", AutoscalePolicyText(p));
    const v1::AutoscaleStatus& a = service.autoscale();
    add("  Current/desired", std::to_string(spec.replicas()) + " / " +
                                 std::to_string(a.desired_replicas()) + " (" + a.state() + ")");
    add("  Observed", a.reporting_replicas() == 0
                          ? "no data"
                          : AutoscaleValueText(p.metric(), a.observed(), 1) + " per replica vs " +
                                AutoscaleValueText(p.metric(), p.target(), 0) + " target, over " +
                                std::to_string(a.reporting_replicas()) + " reporting");
  }
  add("Spread", SpreadText(spec.spread()));
  add("Strategy", spec.strategy() == v1::PLACEMENT_STRATEGY_BINPACK ? "binpack" : "spread");
  std::map<std::string, std::string> selector(spec.node_selector().begin(),
                                              spec.node_selector().end());
  std::string selector_text;
  for (const auto& [key, value] : selector) {
    selector_text += (selector_text.empty() ? "" : " ") + key + "=" + value;
  }
  add("Node selector", selector_text);
  add("Distinct hosts", YesNo(spec.distinct_hosts()));
  add("CPUs", guest.vcpus() == 0 ? "1 (default)" : std::to_string(guest.vcpus()));
  add("Memory",
      guest.memory_mib() == 0 ? "256 MiB (default)" : std::to_string(guest.memory_mib()) + " MiB");
  std::string ports;
  for (const v1::PortMapping& port : guest.ports()) {
    ports += (ports.empty() ? "" : ", ") + std::to_string(port.guest_port());
  }
  add("Published", ports.empty() ? "" : "guest ports " + ports);
  if (spec.has_front_door()) {
    const v1::FrontDoor& door = spec.front_door();
    const bool tcp = door.protocol() == v1::FRONT_DOOR_PROTOCOL_TCP;
    std::string addresses;
    for (const std::string& address : service.front_door_addresses()) {
      addresses += (addresses.empty() ? "" : " ") + (tcp ? address : "http://" + address + "/");
    }
    add("Front door", "port " + std::to_string(door.port()) + " -> guest port " +
                          std::to_string(door.guest_port()) + (tcp ? " (tcp)" : " (http)"));
    add("  Addresses", addresses.empty() ? "none yet (no READY node advertised one)" : addresses);
    for (const std::string& problem : service.front_door_problems()) {
      add("  Not served", problem + " (no replica is placed there)");
    }
  }
  std::string health;
  if (guest.health().has_http()) {
    health = "http GET :" + std::to_string(guest.health().http().port()) +
             (guest.health().http().path().empty() ? "/health" : guest.health().http().path());
  } else if (guest.health().has_tcp()) {
    health = "tcp :" + std::to_string(guest.health().tcp().port());
  }
  add("Health check", health);
  add("Boot", BootModeName(guest.boot_mode()));
  if (!guest.command().empty()) {
    std::string command;
    for (const std::string& word : guest.command()) command += (command.empty() ? "" : " ") + word;
    add("Command", command);
  }
  add("Created", FormatTime(service.created_at()));
  size_t width = 0;
  for (const auto& [key, value] : rows) width = std::max(width, key.size());
  for (const auto& [key, value] : rows) {
    out << key << ":" << std::string(width - key.size() + 1, ' ') << value << "\n";
  }

  std::vector<v1::Replica> replicas(service.replicas().begin(), service.replicas().end());
  std::ranges::sort(replicas, {}, &v1::Replica::index);
  const bool has_health_check = guest.health().probe_case() != v1::HealthCheck::PROBE_NOT_SET;
  out << "\n";
  Table table({"INDEX", "GUEST", "NODE", "ZONE", "STATE", "GUEST-STATE", "HEALTHY", "RESTARTS",
               "LOAD", "ENDPOINTS"});
  for (const v1::Replica& replica : replicas) {
    table.AddRow({std::to_string(replica.index()), OrDash(replica.guest()), OrDash(replica.node()),
                  OrDash(replica.zone()), ReplicaStateName(replica.state()),
                  GuestStateName(replica.guest_state()), ReplicaHealth(replica, has_health_check),
                  std::to_string(replica.restart_count()), ReplicaLoad(replica),
                  ReplicaEndpoints(replica)});
  }
  table.Render(out);

  bool pending_header = false;
  for (const v1::Replica& replica : replicas) {
    if (replica.state() != v1::REPLICA_STATE_PENDING) continue;
    if (!pending_header) {
      out << "\nPending replicas (why no node fits):\n";
      pending_header = true;
    }
    out << "  " << replica.index() << ": "
        << (replica.pending_reason().empty() ? "no reason given" : replica.pending_reason())
        << "\n";
  }
  if (spec.has_autoscale() && service.autoscale().recent_size() > 0) {
    out << "\nLast scaling decisions (newest first):\n";
    for (const v1::ScalingDecision& d : service.autoscale().recent()) {
      out << "  " << FormatTime(d.time()) << "  " << d.from_replicas() << " -> " << d.to_replicas()
          << ": " << d.reason() << "\n";
    }
  }
  bool exit_header = false;
  for (const v1::Replica& replica : replicas) {
    if (replica.last_exit_reason().empty()) continue;
    if (!exit_header) {
      out << "\nLast exits and refusals:\n";
      exit_header = true;
    }
    out << "  " << replica.index() << ": " << replica.last_exit_reason() << "\n";
  }
}

}  // namespace phoenix::ctl
