// The front door table as the supervisor sends it (phoenix.v1.FrontDoorTable) in the agent's plain
// values (agent/frontdoor). The link's only protobuf-facing piece for the front door.
//
// Thread-safety: pure function.
#pragma once

#include <vector>

#include "agent/frontdoor/front_door.h"
#include "agent/frontdoor/frontdoor_table.h"
#include "agent/net/node_network.h"
#include "phoenix/v1/supervisor.pb.h"

namespace phoenix::agent::link {

// Field for field; ports above 65535 become 0, which ValidateTable refuses naming the field.
frontdoor::FrontDoorTable FrontDoorTableFromProto(const v1::FrontDoorTable& in);

// This node's front door load into the link's Status.
void FrontDoorLoadToProto(const frontdoor::FrontDoor::Load& in, v1::Status* out);

// The table's node routes; malformed ones (not "a.b.c.d/n", or a via that is not IPv4) are left
// out with a warning.
std::vector<net::PeerRoute> PeerRoutesFromProto(const v1::FrontDoorTable& in);

}  // namespace phoenix::agent::link
