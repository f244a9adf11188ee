// Node inventory: who this host is (name, zone, labels) and what it has (vCPUs, memory). Read once
// at agent start; the reconciler admits guests against the capacity.
//
// Thread-safety: plain functions and values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "proto/support/error.h"

namespace phoenix::agent {

struct NodeIdentity {
  std::string name;  // default: the host name
  std::string zone = "default";
  std::map<std::string, std::string> labels;
  // Where other nodes and clients reach this node (its front door binds here): an IP literal.
  std::string advertise_address = "127.0.0.1";
  // The node's instance network ("10.88.1.0/24"), empty when it has none.
  std::string instance_subnet;
};

struct HostCapacity {
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
};

// Parses /proc/meminfo text: MemTotal in MiB.
[[nodiscard]] Result<uint64_t> ParseMemTotalMib(std::string_view meminfo);

// Online CPUs and MemTotal of this host.
[[nodiscard]] Result<HostCapacity> ReadHostCapacity();

// The host name (gethostname), or "localhost" if it cannot be read.
std::string HostName();

// The host's primary address: the source address the kernel picks for a route to the outside
// (a UDP socket "connected" to a TEST-NET address; no packet is sent). 127.0.0.1 when the host has
// no such route (an isolated lab machine).
std::string PrimaryAddress();

// Parses "k=v,k2=v2" into labels; an entry without '=' is an error naming it.
[[nodiscard]] Result<std::map<std::string, std::string>> ParseLabels(std::string_view text);

}  // namespace phoenix::agent
