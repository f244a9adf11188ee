#include "supervisor/reconcile/front_door_plan.h"

#include <algorithm>
#include <charconv>

#include "proto/support/ip_address.h"

namespace phoenix::supervisor {
namespace {

struct ParsedEndpoint {
  std::string address;
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
};

bool ParsePort(std::string_view text, uint16_t& out) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return false;
  }
  out = static_cast<uint16_t>(value);
  return true;
}

// "10.0.0.2:31000->80" or "[fd00::2]:31000->80".
std::optional<ParsedEndpoint> ParseEndpoint(std::string_view text) {
  const size_t arrow = text.find("->");
  if (arrow == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, arrow);
  const size_t colon = host.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view ip = host.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  ParsedEndpoint out{.address = std::string(ip)};
  if (!IsIpLiteral(out.address) || !ParsePort(host.substr(colon + 1), out.host_port) ||
      !ParsePort(text.substr(arrow + 2), out.guest_port)) {
    return std::nullopt;
  }
  return out;
}

bool Serves(const FrontDoorReplicaView& r) {
  return !r.node_down && r.guest_state == GuestState::kRunning && r.healthy;
}

}  // namespace

std::vector<FrontDoorService> PlanFrontDoor(const std::vector<FrontDoorServiceView>& services) {
  std::vector<FrontDoorService> out;
  for (const FrontDoorServiceView& view : services) {
    FrontDoorService service{
        .name = view.name, .port = view.door.port, .protocol = view.door.protocol};
    for (const FrontDoorReplicaView& r : view.replicas) {
      if (!Serves(r)) continue;
      for (const std::string& text : r.endpoints) {
        std::optional<ParsedEndpoint> e = ParseEndpoint(text);
        if (!e || e->guest_port != view.door.guest_port) continue;
        std::string address = e->address;
        if (IsUnspecifiedAddress(address)) {
          if (!IsIpLiteral(r.node_address)) break;  // nowhere to reach it
          address = r.node_address;
        }
        service.servers.push_back(FrontDoorServer{.name = r.guest,
                                                  .address = std::move(address),
                                                  .port = e->host_port,
                                                  .zone = r.zone,
                                                  .draining = r.draining});
        break;
      }
    }
    std::ranges::sort(service.servers, {}, &FrontDoorServer::name);
    out.push_back(std::move(service));
  }
  std::ranges::sort(out, {}, &FrontDoorService::name);
  return out;
}

uint64_t NextFrontDoorVersion(uint64_t last, TimePoint now) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch());
  return std::max(last + 1, static_cast<uint64_t>(std::max<int64_t>(micros.count(), 0)));
}

}  // namespace phoenix::supervisor
