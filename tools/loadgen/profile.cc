#include "tools/loadgen/profile.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace phoenix::loadgen {

namespace {

Result<double> Number(std::string_view text, std::string_view phase, std::string_view what) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) ||
      v < 0) {
    return InvalidArgument("--profile", "phase \"" + std::string(phase) +
                                            "\": " + std::string(what) + " \"" + std::string(text) +
                                            "\" is not a non-negative number");
  }
  return v;
}

// "A-B" -> (A, B)
Result<std::pair<double, double>> Pair(std::string_view text, std::string_view phase,
                                       std::string_view what) {
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    return InvalidArgument("--profile", "phase \"" + std::string(phase) + "\": expected " +
                                            std::string(what) + " as A-B, got \"" +
                                            std::string(text) + "\"");
  }
  auto a = Number(text.substr(0, dash), phase, what);
  if (!a) return std::unexpected(a.error());
  auto b = Number(text.substr(dash + 1), phase, what);
  if (!b) return std::unexpected(b.error());
  return std::make_pair(*a, *b);
}

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

Result<Profile> Profile::Parse(std::string_view text) {
  Profile p;
  if (text.empty()) return InvalidArgument("--profile", "is empty");
  std::string_view kind_name;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (comma != std::string_view::npos && text.empty()) {
      return InvalidArgument("--profile", "ends with a comma");
    }
    const std::string_view phase_text = item;
    if (size_t colon = item.find(':'); colon != std::string_view::npos &&
                                       item.substr(0, colon).find('@') == std::string_view::npos) {
      kind_name = item.substr(0, colon);
      item.remove_prefix(colon + 1);
    } else if (kind_name.empty()) {
      return InvalidArgument("--profile", "phase \"" + std::string(phase_text) +
                                              "\" has no kind: start with step:, ramp: or spike:");
    }
    size_t at = item.find('@');
    if (at == std::string_view::npos) {
      return InvalidArgument("--profile",
                             "phase \"" + std::string(phase_text) + "\" has no @SECONDS");
    }
    std::string_view rates = item.substr(0, at);
    std::string_view time = item.substr(at + 1);
    Phase ph;
    if (kind_name == "step") {
      ph.kind = Phase::Kind::kStep;
      auto r = Number(rates, phase_text, "rate");
      if (!r) return std::unexpected(r.error());
      ph.from = ph.to = *r;
    } else if (kind_name == "ramp" || kind_name == "spike") {
      ph.kind = kind_name == "ramp" ? Phase::Kind::kRamp : Phase::Kind::kSpike;
      auto r = Pair(rates, phase_text, kind_name == "ramp" ? "FROM-TO" : "BASE-PEAK");
      if (!r) return std::unexpected(r.error());
      ph.from = r->first;
      ph.to = r->second;
    } else {
      return InvalidArgument("--profile", "phase \"" + std::string(phase_text) +
                                              "\": unknown kind \"" + std::string(kind_name) +
                                              "\" (step, ramp or spike)");
    }
    if (ph.kind == Phase::Kind::kSpike) {
      size_t colon = time.find(':');
      if (colon == std::string_view::npos) {
        return InvalidArgument("--profile", "phase \"" + std::string(phase_text) +
                                                "\": a spike needs @SECONDS:PEAK_SECONDS");
      }
      auto peak = Number(time.substr(colon + 1), phase_text, "peak seconds");
      if (!peak) return std::unexpected(peak.error());
      ph.peak_seconds = *peak;
      time = time.substr(0, colon);
    }
    auto seconds = Number(time, phase_text, "seconds");
    if (!seconds) return std::unexpected(seconds.error());
    if (*seconds <= 0) {
      return InvalidArgument(
          "--profile", "phase \"" + std::string(phase_text) + "\" must last more than 0 seconds");
    }
    ph.seconds = *seconds;
    if (ph.kind == Phase::Kind::kSpike && ph.peak_seconds > ph.seconds) {
      return InvalidArgument("--profile", "phase \"" + std::string(phase_text) +
                                              "\": the peak is longer than the phase");
    }
    p.phases_.push_back(ph);
  }
  return p;
}

double Profile::seconds() const {
  double total = 0;
  for (const Phase& ph : phases_) total += ph.seconds;
  return total;
}

double Profile::RateAt(double t) const {
  if (t < 0) return 0;
  for (const Phase& ph : phases_) {
    if (t < ph.seconds) {
      switch (ph.kind) {
        case Phase::Kind::kStep:
          return ph.from;
        case Phase::Kind::kRamp:
          return ph.from + (ph.to - ph.from) * t / ph.seconds;
        case Phase::Kind::kSpike: {
          const double peak_start = (ph.seconds - ph.peak_seconds) / 2;
          return t >= peak_start && t < peak_start + ph.peak_seconds ? ph.to : ph.from;
        }
      }
    }
    t -= ph.seconds;
  }
  return 0;
}

double Profile::RequestsBy(double t) const {
  double total = 0;
  for (const Phase& ph : phases_) {
    if (t <= 0) break;
    const double d = std::min(t, ph.seconds);
    switch (ph.kind) {
      case Phase::Kind::kStep:
        total += ph.from * d;
        break;
      case Phase::Kind::kRamp:
        total += ph.from * d + (ph.to - ph.from) * d * d / (2 * ph.seconds);
        break;
      case Phase::Kind::kSpike: {
        const double peak_start = (ph.seconds - ph.peak_seconds) / 2;
        const double in_peak =
            std::clamp(d - peak_start, 0.0, ph.peak_seconds);  // peak time within [0, d)
        total += ph.from * (d - in_peak) + ph.to * in_peak;
        break;
      }
    }
    t -= ph.seconds;
  }
  return total;
}

std::string Profile::Describe() const {
  std::string out;
  for (const Phase& ph : phases_) {
    if (!out.empty()) out += ", ";
    switch (ph.kind) {
      case Phase::Kind::kStep:
        out += "step " + Fmt(ph.from) + "/s";
        break;
      case Phase::Kind::kRamp:
        out += "ramp " + Fmt(ph.from) + "->" + Fmt(ph.to) + "/s";
        break;
      case Phase::Kind::kSpike:
        out += "spike " + Fmt(ph.from) + "/s with " + Fmt(ph.to) + "/s for " +
               Fmt(ph.peak_seconds) + "s";
        break;
    }
    out += " for " + Fmt(ph.seconds) + "s";
  }
  return out;
}

}  // namespace phoenix::loadgen
