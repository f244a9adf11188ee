#include "agent/link/front_door_convert.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include "proto/support/ip_address.h"

namespace phoenix::agent::link {
namespace {

uint16_t Port(uint32_t port) { return port <= 65535 ? static_cast<uint16_t>(port) : 0; }

}  // namespace

frontdoor::FrontDoorTable FrontDoorTableFromProto(const v1::FrontDoorTable& in) {
  frontdoor::FrontDoorTable out{.version = in.version()};
  out.services.reserve(in.services_size());
  for (const v1::FrontDoorService& s : in.services()) {
    frontdoor::FrontDoorService service{.name = s.name(),
                                        .port = Port(s.port()),
                                        .mode = s.protocol() == v1::FRONT_DOOR_PROTOCOL_TCP
                                                    ? frontdoor::FrontDoorMode::kTcp
                                                    : frontdoor::FrontDoorMode::kHttp};
    service.servers.reserve(s.servers_size());
    for (const v1::FrontDoorServer& r : s.servers()) {
      service.servers.push_back(frontdoor::FrontDoorServer{.name = r.name(),
                                                           .address = r.address(),
                                                           .port = Port(r.port()),
                                                           .zone = r.zone(),
                                                           .draining = r.draining()});
    }
    out.services.push_back(std::move(service));
  }
  return out;
}

void FrontDoorLoadToProto(const frontdoor::FrontDoor::Load& in, v1::Status* out) {
  if (in.window.count() <= 0) return;
  out->set_front_door_window_ms(static_cast<uint32_t>(in.window.count()));
  for (const frontdoor::ServerLoad& s : in.servers) {
    v1::FrontDoorServerLoad* p = out->add_front_door();
    p->set_service(s.service);
    p->set_server(s.server);
    p->set_requests_per_second(s.requests_per_second);
    p->set_requests_total(s.requests_total);
    p->set_responses_5xx_total(s.responses_5xx_total);
    p->set_connection_errors_total(s.connection_errors_total);
    p->set_in_flight(s.in_flight);
    p->set_avg_response_ms(s.avg_response_ms);
  }
}

std::vector<net::PeerRoute> PeerRoutesFromProto(const v1::FrontDoorTable& in) {
  std::vector<net::PeerRoute> out;
  for (const v1::NodeRoute& r : in.routes()) {
    auto subnet = ParseIpv4Subnet(r.subnet());
    in_addr via{};
    if (!subnet || !IsIpv4Literal(r.via()) || ::inet_pton(AF_INET, r.via().c_str(), &via) != 1) {
      spdlog::warn("front door table {}: route of node {} ignored: subnet \"{}\" via \"{}\"",
                   in.version(), r.node(), r.subnet(), r.via());
      continue;
    }
    out.push_back(net::PeerRoute{.subnet = *subnet, .via = ntohl(via.s_addr)});
  }
  return out;
}

}  // namespace phoenix::agent::link
