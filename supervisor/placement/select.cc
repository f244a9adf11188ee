#include "supervisor/placement/select.h"

#include <array>
#include <bit>

#include "proto/support/error.h"

namespace phoenix::supervisor::placement {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr size_t kMaxScorers = 8;

}  // namespace

size_t EffectiveLimit(size_t limit, size_t nodes) {
  if (limit != 0) return limit;
  size_t log2 = nodes <= 1 ? 0 : static_cast<size_t>(std::bit_width(nodes - 1));
  return std::max<size_t>(8, log2);
}

VisitOrder::VisitOrder(size_t n, uint64_t key) : n_(n) {
  unsigned bits = n <= 1 ? 2 : static_cast<unsigned>(std::bit_width(static_cast<uint64_t>(n - 1)));
  if (bits < 2) bits = 2;
  if (bits % 2 != 0) ++bits;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  uint64_t state = key;
  for (uint64_t& round_key : round_keys_) {
    state = SplitMix64(state);
    round_key = state;
  }
}

uint64_t VisitOrder::Permute(uint64_t value) const {
  uint64_t left = value >> half_bits_;
  uint64_t right = value & half_mask_;
  for (uint64_t round_key : round_keys_) {
    uint64_t mixed = SplitMix64(right ^ round_key) & half_mask_;
    uint64_t next_right = left ^ mixed;
    left = right;
    right = next_right;
  }
  return (left << half_bits_) | right;
}

size_t VisitOrder::operator[](size_t position) const {
  PHX_CHECK(position < n_);
  // Cycle walking: the permutation's cycle through `position` returns to [0, n) within the cycle,
  // and the domain is < 4n, so this ends after a few steps.
  uint64_t value = Permute(position);
  while (value >= n_) value = Permute(value);
  return static_cast<size_t>(value);
}

uint64_t VisitKey(uint64_t seed, size_t ordinal) {
  return SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(ordinal));
}

Decision Select(const Chain& chain, const RequestContext& context, size_t limit,
                uint64_t visit_key) {
  PHX_CHECK(chain.scorers.size() <= kMaxScorers);
  const PlanState& plan = context.plan();
  const size_t n = plan.size();

  std::array<const Scorer*, kMaxScorers> scorers{};
  size_t scorer_count = 0;
  double weight_sum = 0;
  for (const Scorer* scorer : chain.scorers) {
    if (!scorer->Applies(context)) continue;
    scorers[scorer_count++] = scorer;
    weight_sum += scorer->weight();
  }

  Explain explain;
  std::optional<size_t> best;
  double best_score = 0;
  std::array<double, kMaxScorers> best_parts{};
  std::array<double, kMaxScorers> parts{};
  size_t feasible = 0;

  VisitOrder order(n, visit_key);
  for (size_t position = 0; position < n && feasible < limit; ++position) {
    const size_t index = order[position];
    const NodeView& node = plan.node(index);
    explain.Evaluated();
    bool ok = true;
    for (const Filter* filter : chain.filters) {
      if (!filter->Feasible(node, index, context, explain)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    explain.Feasible();
    ++feasible;

    double total = 0;
    for (size_t i = 0; i < scorer_count; ++i) {
      parts[i] = scorers[i]->Score(node, index, context);
      total += scorers[i]->weight() * parts[i];
    }
    double score = weight_sum > 0 ? total / weight_sum : 0;
    bool better = !best || score > best_score ||
                  (score == best_score && (node.name < plan.node(*best).name ||
                                           (node.name == plan.node(*best).name && index < *best)));
    if (better) {
      best = index;
      best_score = score;
      best_parts = parts;
    }
  }

  Decision decision;
  decision.explanation = std::move(explain).Finish(n);
  if (best) {
    decision.node = best;
    decision.score = best_score;
    decision.explanation.node = plan.node(*best).name;
    for (size_t i = 0; i < scorer_count; ++i) {
      decision.explanation.scores[std::string(scorers[i]->Name())] = best_parts[i];
    }
  }
  return decision;
}

}  // namespace phoenix::supervisor::placement
