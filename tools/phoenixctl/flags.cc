// phoenixctl's strict flag parsing (FlagSet), the global flags and the duration/number parsers
// every command shares (declared in cli.h).
#include <algorithm>
#include <charconv>

#include "tools/phoenixctl/cli.h"

namespace phoenix::ctl {

namespace {

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Flags

void FlagSet::Value(std::string name, Setter setter, std::string short_name, bool repeated) {
  PHX_CHECK(!flags_.contains(name));
  if (!short_name.empty()) short_names_[short_name] = name;
  flags_[std::move(name)] = Flag{false, repeated, std::move(setter)};
}

void FlagSet::Bool(std::string name, bool* target) {
  PHX_CHECK(!flags_.contains(name));
  flags_[std::move(name)] = Flag{true, false, [target](std::string_view value) -> Result<void> {
                                   if (value == "true" || value == "1") {
                                     *target = true;
                                   } else if (value == "false" || value == "0") {
                                     *target = false;
                                   } else {
                                     return InvalidArgument("", "expects true or false");
                                   }
                                   return {};
                                 }};
}

void FlagSet::String(std::string name, std::string* target, std::string short_name) {
  Value(
      std::move(name),
      [target](std::string_view value) -> Result<void> {
        if (value.empty()) return InvalidArgument("", "must not be empty");
        *target = std::string(value);
        return {};
      },
      std::move(short_name));
}

void FlagSet::Strings(std::string name, std::vector<std::string>* target) {
  Value(
      std::move(name),
      [target](std::string_view value) -> Result<void> {
        target->emplace_back(value);
        return {};
      },
      {}, /*repeated=*/true);
}

void FlagSet::UInt(std::string name, uint64_t max, std::optional<uint64_t>* target) {
  Value(std::move(name), [target, max](std::string_view value) -> Result<void> {
    auto parsed = ParseUInt(value, max);
    if (!parsed) return std::unexpected(parsed.error());
    *target = *parsed;
    return {};
  });
}

void FlagSet::Duration(std::string name, std::optional<std::chrono::milliseconds>* target) {
  Value(std::move(name), [target](std::string_view value) -> Result<void> {
    auto parsed = ParseDuration(value);
    if (!parsed) return std::unexpected(parsed.error());
    *target = *parsed;
    return {};
  });
}

bool FlagSet::WasSet(std::string_view name) const {
  auto it = seen_.find(std::string(name));
  return it != seen_.end() && it->second > 0;
}

std::string FlagSet::Suggest(std::string_view unknown) const {
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& [name, flag] : flags_) {
    size_t d = EditDistance(unknown, name);
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  // A suggestion that needs more edits than half the word is noise.
  if (best.empty() || best_distance > std::max<size_t>(2, unknown.size() / 2)) return {};
  return best;
}

Result<FlagSet::Parsed> FlagSet::Parse(std::span<const std::string> args) const {
  seen_.clear();
  Parsed parsed;
  // Help wins over everything else so that a half-typed command line still shows it.
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (stop_at_positional_ && !arg.starts_with("-")) break;
    if (arg == "-h" || arg == "--help") {
      parsed.help = true;
      return parsed;
    }
  }
  const std::string help_hint = " (see 'phoenixctl " + command_ + " --help')";
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      if (!allow_trailing_) {
        return InvalidArgument("", "'phoenixctl " + command_ + "' takes no arguments after '--'");
      }
      parsed.trailing.assign(args.begin() + static_cast<ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      if (stop_at_positional_) {
        parsed.positionals.assign(args.begin() + static_cast<ptrdiff_t>(i), args.end());
        break;
      }
      parsed.positionals.push_back(arg);
      continue;
    }
    std::string name;
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      std::string_view body = std::string_view(arg).substr(2);
      size_t eq = body.find('=');
      if (eq != std::string_view::npos) {
        inline_value = std::string(body.substr(eq + 1));
        body = body.substr(0, eq);
      }
      name = std::string(body);
    } else {
      auto it = short_names_.find(arg.substr(1));
      if (it == short_names_.end()) {
        return InvalidArgument(
            "", "unknown flag " + arg + " for 'phoenixctl " + command_ + "'" + help_hint);
      }
      name = it->second;
    }
    auto flag = flags_.find(name);
    if (flag == flags_.end()) {
      std::string suggestion = Suggest(name);
      return InvalidArgument(
          "", "unknown flag --" + name + " for 'phoenixctl " + command_ + "'" +
                  (suggestion.empty() ? "" : "; did you mean --" + suggestion + "?") + help_hint);
    }
    if (!flag->second.repeated && seen_[name] > 0) {
      return InvalidArgument("", "--" + name + " given more than once");
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (flag->second.is_bool) {
      value = "true";
    } else {
      if (i + 1 >= args.size()) return InvalidArgument("", "--" + name + " needs a value");
      value = args[++i];
    }
    auto set = flag->second.setter(value);
    if (!set) {
      return InvalidArgument("", "--" + name + " " + value + ": " + set.error().message);
    }
    ++seen_[name];
  }
  return parsed;
}

void AddGlobalFlags(FlagSet& flags, GlobalOptions& options) {
  if (!flags.Has("endpoint")) {
    flags.Value("endpoint", [&options](std::string_view value) -> Result<void> {
      if (value.empty() || value.find(':') == std::string_view::npos) {
        return InvalidArgument("", "expects unix:/path/to/agent.sock or HOST:PORT");
      }
      options.endpoint = std::string(value);
      return {};
    });
  }
  auto set_timeout = [&options](std::string_view value) -> Result<void> {
    auto parsed = ParseDuration(value);
    if (!parsed) return std::unexpected(parsed.error());
    if (parsed->count() == 0) return InvalidArgument("", "must be positive");
    options.rpc_timeout = *parsed;
    options.rpc_timeout_set = true;
    return {};
  };
  if (!flags.Has("timeout")) flags.Value("timeout", set_timeout);
  if (!flags.Has("rpc-timeout")) flags.Value("rpc-timeout", set_timeout);
  auto host_port = [](std::string* target, std::string_view example) {
    return [target, example](std::string_view value) -> Result<void> {
      if (value.empty() || value.find(':') == std::string_view::npos) {
        return InvalidArgument("", "expects HOST:PORT, e.g. " + std::string(example));
      }
      *target = std::string(value);
      return {};
    };
  };
  if (!flags.Has("supervisor")) {
    flags.Value("supervisor", host_port(&options.supervisor, kDefaultSupervisor));
  }
  if (!flags.Has("token")) flags.String("token", &options.token);
  if (!flags.Has("token-file")) flags.String("token-file", &options.token_file);
  if (!flags.Has("ca-file")) flags.String("ca-file", &options.ca_file);
  if (!flags.Has("insecure")) flags.Bool("insecure", &options.insecure);
  if (!flags.Has("agent-ca-file")) flags.String("agent-ca-file", &options.agent_ca_file);
  if (!flags.Has("output")) {
    flags.Value(
        "output",
        [&options](std::string_view value) -> Result<void> {
          if (value == "json") {
            options.output = OutputFormat::kJson;
          } else if (value == "table") {
            options.output = OutputFormat::kTable;
          } else {
            return InvalidArgument("", "expects table or json");
          }
          return {};
        },
        "o");
  }
}

Result<uint64_t> ParseUInt(std::string_view text, uint64_t max) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return InvalidArgument("", "expects a non-negative integer");
  }
  if (value > max) return InvalidArgument("", "must be at most " + std::to_string(max));
  return value;
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  // One or more <integer><unit> parts ("1m30s"); a bare number is ambiguous, so it is refused.
  if (text.empty()) return InvalidArgument("", "expects a duration like 500ms, 10s, 2m or 1h");
  std::chrono::milliseconds total{0};
  std::string_view rest = text;
  while (!rest.empty()) {
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), number);
    if (ec != std::errc() || end == rest.data()) {
      return InvalidArgument("", "expects a duration like 500ms, 10s, 2m or 1h");
    }
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
    uint64_t scale = 0;
    for (auto [unit, ms] : {std::pair<std::string_view, uint64_t>{"ms", 1},
                            {"s", 1000},
                            {"m", 60'000},
                            {"h", 3'600'000}}) {
      if (rest.starts_with(unit)) {  // "ms" is tried before "m"
        scale = ms;
        rest.remove_prefix(unit.size());
        break;
      }
    }
    if (scale == 0) {
      return InvalidArgument("", "needs a unit (ms, s, m or h), e.g. 10s");
    }
    if (number > 7 * 24 * 3'600'000ULL / scale) return InvalidArgument("", "is longer than a week");
    total += std::chrono::milliseconds(number * scale);
  }
  return total;
}

}  // namespace phoenix::ctl
