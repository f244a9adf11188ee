// The scorer interface: one named, weighted opinion in [-1, 1] about a feasible node. One class per
// file in scorers/; pipeline.cc sets the weights' order of influence. A scorer that does not apply
// to a request (no spread attribute, no node being left, ...) is left out of that request's
// normalization instead of voting 0, so it cannot dilute the scorers that do apply.
//
// Threading: stateless after construction; Score is const.
#pragma once

#include <cstddef>
#include <string_view>

#include "supervisor/placement/placement.h"
#include "supervisor/placement/plan_state.h"

namespace phoenix::supervisor::placement {

class Scorer {
 public:
  explicit Scorer(double weight) : weight_(weight) {}
  virtual ~Scorer() = default;
  virtual std::string_view Name() const = 0;
  virtual bool Applies(const RequestContext& context) const = 0;
  // In [-1, 1]; higher is better. Only called for nodes every filter accepted.
  virtual double Score(const NodeView& node, size_t index, const RequestContext& context) const = 0;
  double weight() const { return weight_; }

 private:
  double weight_;
};

}  // namespace phoenix::supervisor::placement
