// What `phoenixctl service ls` and `service show` print: the service table and a service's detail
// (spec, front door, replicas, pending reasons, scaling decisions, last exits). Pure rendering of
// phoenix.v1 messages; exposed for tests.
//
// Threading: functions run on the caller's thread.
#pragma once

#include <chrono>
#include <ostream>
#include <span>
#include <string>

#include "phoenix/v1/supervisor.pb.h"

namespace phoenix::ctl {

std::string ReplicaStateName(v1::ReplicaState state);  // "pending", "running", ...
// "min 1, max 6, target rps 200 rps per replica (±10%), scale-down window 60s".
std::string AutoscalePolicyText(const v1::AutoscalePolicy& policy);
// "zone (max skew 1)" or "-".
std::string SpreadText(const v1::Spread& spread);

// NAME RUNTIME IMAGE REPLICAS SPREAD AGE; REPLICAS is running/desired.
void RenderServiceTable(std::span<const v1::Service> services,
                        std::chrono::system_clock::time_point now, std::ostream& out);
// Spec summary (with the autoscale policy, current/desired replicas and the observed metric),
// one row per replica (INDEX GUEST NODE ZONE STATE GUEST-STATE HEALTHY RESTARTS LOAD ENDPOINTS),
// then every pending replica's reason in full, the last scaling decisions and the last exits.
void RenderServiceDetail(const v1::Service& service, std::ostream& out);

}  // namespace phoenix::ctl
