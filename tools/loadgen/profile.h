// Rate profiles for phoenix-loadgen: the request rate as a function of time, parsed from the
// --profile text. A profile is a comma-separated list of phases run one after another:
//   step:RATE@SECONDS              RATE requests/s for SECONDS
//   ramp:FROM-TO@SECONDS           linear from FROM to TO requests/s over SECONDS
//   spike:BASE-PEAK@SECONDS:PEAK_SECONDS
//                                  BASE, with PEAK for PEAK_SECONDS in the middle of the phase
// A phase without a "kind:" prefix repeats the previous phase's kind ("step:50@10,400@30,0@20").
// Rates and seconds are non-negative decimals; every phase lasts more than 0 s.
//
// Pure and thread-safe (immutable after parsing).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/support/error.h"

namespace phoenix::loadgen {

struct Phase {
  enum class Kind { kStep, kRamp, kSpike };
  Kind kind = Kind::kStep;
  double from = 0;          // step: the rate; ramp: start rate; spike: base rate
  double to = 0;            // ramp: end rate; spike: peak rate
  double seconds = 0;       // length of the phase
  double peak_seconds = 0;  // spike only
};

class Profile {
 public:
  // Errors: kInvalidArgument (field "--profile") naming the bad phase and what is wrong.
  [[nodiscard]] static Result<Profile> Parse(std::string_view text);

  // The wanted rate at `t` seconds after the start; 0 after the end.
  double RateAt(double t) const;
  // Requests the profile asks for in [0, t): the integral of the rate.
  double RequestsBy(double t) const;
  double seconds() const;  // total length
  const std::vector<Phase>& phases() const { return phases_; }
  std::string Describe() const;  // "step 50/s for 10s, ramp 50->400/s for 30s"

 private:
  std::vector<Phase> phases_;
};

}  // namespace phoenix::loadgen
