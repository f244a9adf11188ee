#include "supervisor/placement/explain.h"

#include <string>

#include <gtest/gtest.h>

#include "supervisor/placement/testing/nodes.h"

namespace phoenix::supervisor::placement {
namespace {

using testing::NodeBuilder;

TEST(FormatMiBTest, WholeGiBAsGiB) {
  struct Case {
    uint64_t mib;
    std::string want;
  } cases[] = {
      {0, "0 MiB"}, {128, "128 MiB"}, {1024, "1 GiB"}, {1536, "1536 MiB"}, {262144, "256 GiB"}};
  for (const Case& c : cases) EXPECT_EQ(FormatMiB(c.mib), c.want);
}

TEST(ExplanationTest, PendingSummaryLeadsWithTheCommonestReasonAndElidesTheRest) {
  Explain explain;
  for (int i = 0; i < 4; ++i) {
    NodeView node = NodeBuilder("m" + std::to_string(i), "a");
    explain.Evaluated();
    explain.Reject("memory", node,
                   [&] { return "needs 1 GiB, " + std::to_string(i) + " MiB free"; });
  }
  NodeView vm_only = NodeBuilder("r", "a");
  explain.Evaluated();
  explain.Reject("runtime", vm_only, [] { return std::string("no container runtime"); });
  Explanation explanation = std::move(explain).Finish(5);
  EXPECT_EQ(explanation.examples.size(), 3u);
  EXPECT_EQ(explanation.Summary(),
            "no node fits (5 nodes): 4 memory (m0: needs 1 GiB, 0 MiB free; m1: needs 1 GiB, 1 "
            "MiB free; ...), 1 runtime (r: no container runtime)");
}

TEST(ExplanationTest, PlacedSummaryNamesNodeScoresAndRejections) {
  Explanation explanation;
  explanation.node = "n7";
  explanation.nodes_total = 100;
  explanation.nodes_evaluated = 12;
  explanation.nodes_feasible = 9;
  explanation.rejected = {{"zone-skew", 3}};
  explanation.reason_examples = {
      {"zone-skew", {"n1: zone a would have 3, zone b has 1 (max skew 1)"}}};
  explanation.scores = {{"zone-spread", 1}, {"binpack", -0.25}, {"anti-affinity", 0}};
  EXPECT_EQ(explanation.Summary(),
            "placed on n7 (zone-spread 1.00, binpack -0.25, anti-affinity 0.00); 9 feasible of 12 "
            "evaluated, 100 nodes; rejected 3 zone-skew (n1: zone a would have 3, zone b has 1 "
            "(max skew 1); ...)");
}

}  // namespace
}  // namespace phoenix::supervisor::placement
