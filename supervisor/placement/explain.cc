#include "supervisor/placement/explain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace phoenix::supervisor::placement {
namespace {

std::string FormatScore(double value) {
  char buffer[32];
  // Rounding can still give "-0.00" for tiny negatives; users read that as a sign that matters.
  if (std::abs(value) < 0.005) value = 0;
  std::snprintf(buffer, sizeof(buffer), "%.2f", value);
  return buffer;
}

// Reasons, most frequent first (name breaks ties) so the main cause leads the summary.
std::vector<std::pair<std::string, size_t>> ByCount(const std::map<std::string, size_t>& rejected) {
  std::vector<std::pair<std::string, size_t>> reasons(rejected.begin(), rejected.end());
  std::stable_sort(reasons.begin(), reasons.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return reasons;
}

std::string Plural(size_t count, std::string_view noun) {
  std::string text = std::to_string(count) + " " + std::string(noun);
  if (count != 1) text += "s";
  return text;
}

}  // namespace

std::string FormatMiB(uint64_t mib) {
  if (mib >= 1024 && mib % 1024 == 0) return std::to_string(mib / 1024) + " GiB";
  return std::to_string(mib) + " MiB";
}

Explain::Tally& Explain::TallyFor(std::string_view reason) {
  for (Tally& tally : tallies_) {
    if (tally.reason == reason) return tally;
  }
  tallies_.push_back(Tally{reason, 0, {}});
  return tallies_.back();
}

size_t Explain::RejectedFor(std::string_view reason) const {
  for (const Tally& tally : tallies_) {
    if (tally.reason == reason) return tally.count;
  }
  return 0;
}

Explanation Explain::Finish(size_t nodes_total) && {
  Explanation explanation;
  explanation.nodes_total = nodes_total;
  explanation.nodes_evaluated = evaluated_;
  explanation.nodes_feasible = feasible_;
  for (Tally& tally : tallies_) {
    // Examples are the first met in the shuffled visiting order; sorted, the same rejections read
    // the same whatever the seed.
    std::sort(tally.examples.begin(), tally.examples.end());
    std::string reason(tally.reason);
    explanation.rejected[reason] = tally.count;
    for (const std::string& example : tally.examples) {
      if (explanation.examples.size() < kExamples) explanation.examples.push_back(example);
    }
    explanation.reason_examples[reason] = std::move(tally.examples);
  }
  return explanation;
}

std::string Explanation::Summary() const {
  std::string rejections;
  for (const auto& [reason, count] : ByCount(rejected)) {
    if (!rejections.empty()) rejections += ", ";
    rejections += std::to_string(count) + " " + reason;
    auto it = reason_examples.find(reason);
    if (it != reason_examples.end() && !it->second.empty()) {
      rejections += " (";
      for (size_t i = 0; i < it->second.size(); ++i) {
        if (i > 0) rejections += "; ";
        rejections += it->second[i];
      }
      if (count > it->second.size()) rejections += "; ...";
      rejections += ")";
    }
  }

  if (node.empty()) {
    std::string text = "no node fits (" + Plural(nodes_total, "node") + ")";
    if (!rejections.empty()) text += ": " + rejections;
    return text;
  }
  std::string text = "placed on " + node;
  if (!scores.empty()) {
    // The chosen node's score per scorer, the strongest influence first.
    std::vector<std::pair<std::string, double>> ordered(scores.begin(), scores.end());
    std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
      return std::abs(a.second) > std::abs(b.second);
    });
    text += " (";
    for (size_t i = 0; i < ordered.size(); ++i) {
      if (i > 0) text += ", ";
      text += ordered[i].first + " " + FormatScore(ordered[i].second);
    }
    text += ")";
  }
  text += "; " + std::to_string(nodes_feasible) + " feasible of " +
          std::to_string(nodes_evaluated) + " evaluated, " + Plural(nodes_total, "node");
  if (!rejections.empty()) text += "; rejected " + rejections;
  return text;
}

}  // namespace phoenix::supervisor::placement
