#include "supervisor/state/memory_state_store.h"

#include <gtest/gtest.h>

#include "supervisor/state/state_store_conformance.h"

namespace phoenix::supervisor {
namespace {

struct MemoryTraits {
  static constexpr bool kDurable = false;
  static Result<std::unique_ptr<StateStore>> Open(const std::filesystem::path& /*dir*/,
                                                  size_t max_events) {
    return std::make_unique<MemoryStateStore>(MemoryStateStore::Options{.max_events = max_events});
  }
};

}  // namespace
}  // namespace phoenix::supervisor

namespace phoenix::supervisor::conformance {
// The suite's generated symbols live in its namespace, so it is instantiated there.
INSTANTIATE_TYPED_TEST_SUITE_P(MemoryStateStore, StateStoreConformance,
                               ::testing::Types<::phoenix::supervisor::MemoryTraits>);
}  // namespace phoenix::supervisor::conformance
