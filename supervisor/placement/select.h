// Select: visit the nodes in a seeded shuffled order, run the filters on each, score the feasible
// ones, stop after `limit` feasible candidates, and pick the best normalized score (ties broken by
// node name, then index, so the result never depends on anything but the input and the seed).
//
// Bounding the candidates (as Nomad's LimitIterator does) keeps the work per placement roughly
// constant on large clusters; shuffling keeps the bounded sample from always favoring the same
// nodes. The shuffle is a keyed permutation computed per position (no O(n) array per request).
//
// Threading: pure functions over values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "supervisor/placement/filters/filter.h"
#include "supervisor/placement/placement.h"
#include "supervisor/placement/plan_state.h"
#include "supervisor/placement/scorers/scorer.h"

namespace phoenix::supervisor::placement {

// Feasible candidates to score: `limit`, or for 0, ceil(log2(nodes)) but at least 8.
size_t EffectiveLimit(size_t limit, size_t nodes);

// A pseudo-random permutation of [0, n) fixed by `key`: a 4-round Feistel network over the
// smallest even power of two >= n, cycle-walked back into range (fewer than 4 steps on average).
class VisitOrder {
 public:
  VisitOrder(size_t n, uint64_t key);
  size_t size() const { return n_; }
  size_t operator[](size_t position) const;  // position < size()

 private:
  uint64_t Permute(uint64_t value) const;

  size_t n_;
  unsigned half_bits_ = 1;
  uint64_t half_mask_ = 1;
  uint64_t round_keys_[4] = {};
};

// The key of the visiting order for the request at `ordinal` in a plan with `seed`: each request
// starts somewhere else, so consecutive placements do not resample the same few nodes.
uint64_t VisitKey(uint64_t seed, size_t ordinal);

// The filter and scorer chain, in the order pipeline.cc sets. Borrowed pointers.
struct Chain {
  std::vector<const Filter*> filters;
  std::vector<const Scorer*> scorers;
};

// Runs the chain for one request. Does not commit the decision to the plan.
Decision Select(const Chain& chain, const RequestContext& context, size_t limit,
                uint64_t visit_key);

}  // namespace phoenix::supervisor::placement
