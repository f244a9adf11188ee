// Test helpers: NodeView values built in one expression, for the static node tables the placement
// tests are driven by. Test-only.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>

#include "supervisor/placement/placement.h"

namespace phoenix::supervisor::placement::testing {

class NodeBuilder {
 public:
  NodeBuilder(std::string name, std::string zone) {
    node_.name = std::move(name);
    node_.zone = std::move(zone);
    node_.capacity = {8, 16384};
    node_.runtimes = {RuntimeKind::kContainer};
  }
  NodeBuilder& Capacity(uint32_t vcpus, uint64_t memory_mib) {
    node_.capacity = {vcpus, memory_mib};
    return *this;
  }
  NodeBuilder& Allocated(uint32_t vcpus, uint64_t memory_mib) {
    node_.allocated = {vcpus, memory_mib};
    return *this;
  }
  NodeBuilder& Runtimes(std::set<RuntimeKind> runtimes) {
    node_.runtimes = std::move(runtimes);
    return *this;
  }
  NodeBuilder& Label(std::string key, std::string value) {
    node_.labels[std::move(key)] = std::move(value);
    return *this;
  }
  NodeBuilder& Image(std::string image) {
    node_.images.insert(std::move(image));
    return *this;
  }
  NodeBuilder& State(NodeState state) {
    node_.state = state;
    return *this;
  }
  NodeBuilder& FrontDoorPortTaken(uint16_t port) {
    node_.taken_front_door_ports.insert(port);
    return *this;
  }
  NodeBuilder& Drained() {
    node_.drained = true;
    return *this;
  }
  operator NodeView() const { return node_; }  // NOLINT: reads as a table row

 private:
  NodeView node_;
};

inline size_t IndexOf(const ClusterView& cluster, const std::string& name) {
  for (size_t i = 0; i < cluster.nodes.size(); ++i) {
    if (cluster.nodes[i].name == name) return i;
  }
  return cluster.nodes.size();
}

}  // namespace phoenix::supervisor::placement::testing
