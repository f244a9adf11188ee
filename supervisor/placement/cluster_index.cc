#include "supervisor/placement/cluster_index.h"

#include <algorithm>
#include <utility>

namespace phoenix::supervisor::placement {
namespace {

// Zone names of one cluster usually share a prefix and length ("zone-a", "us-east-1b"): comparing
// the length and the last character first settles most mismatches without a memcmp call, and the
// bytes are compared inline (names are short; the call cost more than the compare).
bool SameZone(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  if (a.back() != b.back()) return false;
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Both loops over every node are bound by memory, not compares: fetch the zone a few nodes ahead.
// The string object itself is fetched (its address needs no load; short names live inside it),
// not zone.data(), whose address is a load that misses just the same.
constexpr size_t kAhead = 16;

}  // namespace

ClusterIndex::ClusterIndex(const ClusterView& cluster) {
  const size_t n = cluster.nodes.size();
  zone_of_.resize(n, kNoZone);
  ZoneId last = kNoZone;  // nodes often come grouped by zone
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(&cluster.nodes[i + kAhead].zone);
    std::string_view zone = cluster.nodes[i].zone;
    if (zone.empty()) continue;
    ZoneId id = kNoZone;
    if (last != kNoZone && SameZone(zone_names_[last], zone)) {
      id = last;
    } else {
      // Zones are few (a handful per cluster), so a linear scan beats hashing the name.
      auto it = std::find_if(zone_names_.begin(), zone_names_.end(),
                             [&](const std::string& known) { return SameZone(known, zone); });
      if (it == zone_names_.end()) {
        zone_names_.emplace_back(zone);
        members_.emplace_back();
        it = zone_names_.end() - 1;
      }
      id = static_cast<ZoneId>(it - zone_names_.begin());
      last = id;
    }
    zone_of_[i] = id;
    members_[id].push_back(i);
  }
}

bool ClusterIndex::Matches(const ClusterView& cluster) const {
  const size_t n = cluster.nodes.size();
  if (n != zone_of_.size()) return false;
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(&cluster.nodes[i + kAhead].zone);
    if (!SameZone(cluster.nodes[i].zone, ZoneName(zone_of_[i]))) return false;
  }
  return true;
}

std::shared_ptr<const ClusterIndex> ClusterIndex::For(const ClusterView& cluster) {
  std::shared_ptr<const ClusterIndex> index = cluster.index_cache.Get();
  if (index != nullptr && index->Matches(cluster)) return index;
  index = std::make_shared<const ClusterIndex>(cluster);
  cluster.index_cache.Set(index);
  return index;
}

std::shared_ptr<const ClusterIndex> ClusterIndexCache::Get() const {
  std::lock_guard lock(mutex_);
  return index_;
}

void ClusterIndexCache::Set(std::shared_ptr<const ClusterIndex> index) const {
  std::lock_guard lock(mutex_);
  index_ = std::move(index);
}

}  // namespace phoenix::supervisor::placement
