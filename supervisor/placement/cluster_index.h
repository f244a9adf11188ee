// ClusterIndex: the zone layout of one ClusterView — each node's zone as a small dense id (in order
// of first appearance, as placement has always numbered them) and the nodes of each zone in order.
//
// Why: a zone-spread request must know which zones hold at least one node the request could use
// (READY, its runtime, its labels). Scanning every node for that on each Place() cost more than the
// placements themselves on a 10,000-node view. With the nodes grouped by zone, the check stops at
// the first usable node of each zone (O(zones) when zones are healthy).
//
// Correctness never depends on the caller: the index only records which zone each node is in;
// node state, runtimes and labels are always read from the live view. ClusterView caches its index
// (built on the first Place()), and For() checks the cached index against the view's nodes on
// every call (a compare per node, no allocation), rebuilding it when a node was added, removed or
// moved to another zone.
//
// Ownership: an index owns copies of the zone names and never points into a view. Immutable once
// built, so it is safe to share between threads; For() is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/placement/placement.h"

namespace phoenix::supervisor::placement {

using ZoneId = uint32_t;
inline constexpr ZoneId kNoZone = std::numeric_limits<ZoneId>::max();

class ClusterIndex {
 public:
  explicit ClusterIndex(const ClusterView& cluster);

  // The index for `cluster`: the view's cached index while it still matches the nodes, else a new
  // one (which becomes the cached one).
  static std::shared_ptr<const ClusterIndex> For(const ClusterView& cluster);

  // True when `cluster` has the indexed number of nodes and every node is in its indexed zone.
  bool Matches(const ClusterView& cluster) const;

  size_t NodeCount() const { return zone_of_.size(); }
  ZoneId ZoneOf(size_t node) const { return zone_of_[node]; }  // kNoZone: the node has no zone
  size_t ZoneCount() const { return zone_names_.size(); }
  std::string_view ZoneName(ZoneId zone) const {
    return zone < zone_names_.size() ? std::string_view(zone_names_[zone]) : std::string_view();
  }
  const std::vector<size_t>& NodesIn(ZoneId zone) const { return members_[zone]; }

 private:
  std::vector<ZoneId> zone_of_;
  std::vector<std::string> zone_names_;
  std::vector<std::vector<size_t>> members_;  // by ZoneId, node indexes ascending
};

}  // namespace phoenix::supervisor::placement
