// What the node's HAProxy measured per replica: its `show stat` CSV taken apart, and rates between
// two samples. The front door's request metrics (requests/s, 5xx, connection errors, in-flight
// requests) come from here, not from the agent's port proxy, which is not on the front door's path.
//
// Thread-safety: pure functions over values.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::agent::frontdoor {

// One server line of `show stat` (counters since HAProxy started or the server was added).
struct ServerCounters {
  std::string backend;             // the service
  std::string server;              // the replica's guest name
  uint64_t requests = 0;           // HTTP: req_tot; TCP: stot (connections)
  uint64_t responses_5xx = 0;      // hrsp_5xx
  uint64_t connection_errors = 0;  // econ: could not connect to the replica
  uint32_t in_flight = 0;          // scur: requests (HTTP) or connections (TCP) being served now
  uint32_t avg_response_ms = 0;    // rtime: average over the last 1024 requests
  bool operator==(const ServerCounters&) const = default;
};

// Server lines of a `show stat` answer; frontend and backend summary lines are skipped. Columns are
// found by the header's names, so a newer HAProxy's extra columns do not matter. kInvalidArgument
// when there is no header or it lacks a column used here.
[[nodiscard]] Result<std::vector<ServerCounters>> ParseShowStat(std::string_view csv);

struct ServerLoad {
  std::string service;
  std::string server;
  double requests_per_second = 0;  // over the window between the two samples
  uint64_t requests_total = 0;
  uint64_t responses_5xx_total = 0;
  uint64_t connection_errors_total = 0;
  uint32_t in_flight = 0;
  uint32_t avg_response_ms = 0;
  bool operator==(const ServerLoad&) const = default;
};

// Every server of `current`, with its rate since `previous` over `window`. A server new in
// `current`, or whose counter went down (HAProxy restarted, the server was deleted and added
// again), counts from zero.
std::vector<ServerLoad> LoadBetween(const std::vector<ServerCounters>& previous,
                                    const std::vector<ServerCounters>& current,
                                    std::chrono::milliseconds window);

}  // namespace phoenix::agent::frontdoor
