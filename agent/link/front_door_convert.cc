#include "agent/link/front_door_convert.h"

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

}  // namespace phoenix::agent::link
