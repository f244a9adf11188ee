// `phoenixctl service ...`: create, list, show, scale, autoscale and remove the supervisor's
// services (N replicas of one guest spec placed across the cluster's nodes). Also the renderers
// `service ls` and `service show` use, exposed for tests.
//
// Threading: functions run on the caller's thread; see cli.h for the Context rules.
#pragma once

#include <chrono>
#include <ostream>
#include <span>
#include <string>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunServiceGroup(Context& ctx, std::span<const std::string> args);

// "[a-z0-9][a-z0-9-]{0,39}", as the supervisor requires.
bool IsValidServiceName(std::string_view name);

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
