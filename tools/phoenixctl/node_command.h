// `phoenixctl node ...`: `info` asks the agent about its own host (capacity, allocations, runtimes
// and their accelerators); `ls`, `show`, `drain` and `undrain` ask the supervisor about the
// cluster's nodes. Threading: caller's thread.
#pragma once

#include <chrono>
#include <ostream>
#include <span>
#include <string>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

int RunNodeGroup(Context& ctx, std::span<const std::string> args);

void RenderNodeInfo(const v1::NodeInfo& info, std::ostream& out);

std::string NodeStateName(v1::NodeState state);  // "ready", "suspect", "down", "-"
// "0.4s", "12.0s", then FormatAge's "3m", "2h"; "-" when never.
std::string HeartbeatAge(const google::protobuf::Timestamp& last,
                         std::chrono::system_clock::time_point now);
// NAME ZONE STATE DRAINED CPU MEM REPLICAS HEARTBEAT-AGE (CPU and MEM are used/total).
void RenderNodeTable(std::span<const v1::Node> nodes, std::chrono::system_clock::time_point now,
                     std::ostream& out);
void RenderNodeDetail(const v1::Node& node, std::chrono::system_clock::time_point now,
                      std::ostream& out);

}  // namespace phoenix::ctl
