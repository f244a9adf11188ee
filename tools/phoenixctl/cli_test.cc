#include "tools/phoenixctl/cli.h"

#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phoenix::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

std::vector<std::string> Args(std::initializer_list<const char*> list) {
  return std::vector<std::string>(list.begin(), list.end());
}

TEST(FlagSetTest, ParsesValuesBooleansPositionalsAndTrailing) {
  std::string image;
  bool follow = false;
  std::vector<std::string> env;
  std::optional<uint64_t> cpus;
  std::optional<std::chrono::milliseconds> interval;
  FlagSet flags("guest run");
  flags.String("image", &image);
  flags.Bool("follow", &follow);
  flags.Strings("env", &env);
  flags.UInt("cpus", 64, &cpus);
  flags.Duration("interval", &interval);
  flags.AllowTrailing();
  auto parsed =
      flags.Parse(Args({"web", "--image", "demo", "--follow", "--env=A=1", "--env", "B=2",
                        "--cpus=4", "--interval", "1m30s", "--", "/bin/sh", "--not-a-flag"}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->help);
  EXPECT_EQ(parsed->positionals, Args({"web"}));
  EXPECT_EQ(parsed->trailing, Args({"/bin/sh", "--not-a-flag"}));
  EXPECT_EQ(image, "demo");
  EXPECT_TRUE(follow);
  EXPECT_EQ(env, Args({"A=1", "B=2"}));
  EXPECT_EQ(cpus, 4u);
  EXPECT_EQ(interval, 90s);
  EXPECT_TRUE(flags.WasSet("image"));
  EXPECT_FALSE(flags.WasSet("nope"));
}

TEST(FlagSetTest, UnknownFlagSuggestsTheClosestOne) {
  std::optional<uint64_t> memory;
  FlagSet flags("guest run");
  flags.UInt("memory", 1024, &memory);
  auto parsed = flags.Parse(Args({"--memroy", "64"}));
  ASSERT_FALSE(parsed);
  EXPECT_THAT(parsed.error().message, HasSubstr("unknown flag --memroy"));
  EXPECT_THAT(parsed.error().message, HasSubstr("did you mean --memory?"));
  EXPECT_THAT(parsed.error().message, HasSubstr("phoenixctl guest run --help"));

  auto far = flags.Parse(Args({"--zzzzzzzzzz"}));
  ASSERT_FALSE(far);
  EXPECT_THAT(far.error().message, ::testing::Not(HasSubstr("did you mean")));

  auto short_flag = flags.Parse(Args({"-x"}));
  ASSERT_FALSE(short_flag);
  EXPECT_THAT(short_flag.error().message, HasSubstr("unknown flag -x"));
}

TEST(FlagSetTest, RejectsMissingValuesRepeatsBadValuesAndUnexpectedTrailing) {
  std::string image;
  std::optional<uint64_t> cpus;
  FlagSet flags("guest run");
  flags.String("image", &image);
  flags.UInt("cpus", 64, &cpus);

  auto missing = flags.Parse(Args({"--image"}));
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("--image needs a value"));

  auto twice = flags.Parse(Args({"--image", "a", "--image", "b"}));
  ASSERT_FALSE(twice);
  EXPECT_THAT(twice.error().message, HasSubstr("--image given more than once"));

  auto bad = flags.Parse(Args({"--cpus", "four"}));
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("--cpus four: expects a non-negative integer"));

  auto too_big = flags.Parse(Args({"--cpus", "65"}));
  ASSERT_FALSE(too_big);
  EXPECT_THAT(too_big.error().message, HasSubstr("at most 64"));

  auto trailing = flags.Parse(Args({"--", "x"}));
  ASSERT_FALSE(trailing);
  EXPECT_THAT(trailing.error().message, HasSubstr("no arguments after '--'"));
}

TEST(FlagSetTest, HelpWinsEvenOverBadFlags) {
  FlagSet flags("guest ls");
  auto parsed = flags.Parse(Args({"--bogus", "--help"}));
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->help);
  auto short_help = flags.Parse(Args({"-h"}));
  ASSERT_TRUE(short_help);
  EXPECT_TRUE(short_help->help);
}

TEST(FlagSetTest, GlobalFlagsStopAtTheCommand) {
  GlobalOptions options;
  FlagSet flags("");
  flags.StopAtPositional();
  AddGlobalFlags(flags, options);
  auto parsed = flags.Parse(Args({"--endpoint", "127.0.0.1:9", "-o", "json", "--timeout=5s",
                                  "guest", "stop", "web", "--timeout", "20s", "--help"}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->help) << "--help after the command belongs to the command";
  EXPECT_EQ(parsed->positionals, Args({"guest", "stop", "web", "--timeout", "20s", "--help"}));
  EXPECT_EQ(options.endpoint, "127.0.0.1:9");
  EXPECT_EQ(options.output, OutputFormat::kJson);
  EXPECT_EQ(options.rpc_timeout, 5s);
  EXPECT_TRUE(options.rpc_timeout_set);
}

TEST(FlagSetTest, GlobalFlagValuesAreValidated) {
  GlobalOptions options;
  FlagSet flags("guest ls");
  AddGlobalFlags(flags, options);
  EXPECT_FALSE(flags.Parse(Args({"-o", "yaml"})));
  EXPECT_FALSE(flags.Parse(Args({"--endpoint", "localhost"})));
  EXPECT_FALSE(flags.Parse(Args({"--timeout", "0s"})));
  EXPECT_FALSE(flags.Parse(Args({"--timeout", "10"})));
}

TEST(FlagSetTest, CommandsOwnTimeoutShadowsTheGlobalOne) {
  GlobalOptions options;
  std::optional<std::chrono::milliseconds> grace;
  FlagSet flags("guest stop");
  flags.Duration("timeout", &grace);
  AddGlobalFlags(flags, options);
  auto parsed = flags.Parse(Args({"--timeout", "20s", "--rpc-timeout", "3s"}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(grace, 20s);
  EXPECT_EQ(options.rpc_timeout, 3s);
}

TEST(FlagSetTest, SupervisorGlobalFlags) {
  GlobalOptions options;
  FlagSet flags("");
  flags.StopAtPositional();
  AddGlobalFlags(flags, options);
  auto parsed = flags.Parse(Args({"--supervisor", "127.0.0.1:7401", "--token", "abc", "--ca-file",
                                  "/tmp/ca.pem", "--insecure", "service", "ls"}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->positionals, Args({"service", "ls"}));
  EXPECT_EQ(options.supervisor, "127.0.0.1:7401");
  EXPECT_EQ(options.token, "abc");
  EXPECT_EQ(options.ca_file, "/tmp/ca.pem");
  EXPECT_TRUE(options.insecure);
  GlobalOptions other;
  FlagSet strict("service ls");
  AddGlobalFlags(strict, other);
  EXPECT_FALSE(strict.Parse(Args({"--supervisor", "nohostport"})));
  EXPECT_FALSE(strict.Parse(Args({"--token", ""})));
}

TEST(ParseMemoryTest, MibByDefaultOrWithAUnit) {
  EXPECT_EQ(ParseMemoryMib("256"), 256u);
  EXPECT_EQ(ParseMemoryMib("256M"), 256u);
  EXPECT_EQ(ParseMemoryMib("256MiB"), 256u);
  EXPECT_EQ(ParseMemoryMib("1G"), 1024u);
  EXPECT_EQ(ParseMemoryMib("2GiB"), 2048u);
  for (const char* bad : {"", "0", "0G", "G", "1T", "1.5G", "-1", "12 M", "99999999999999G"}) {
    EXPECT_FALSE(ParseMemoryMib(bad)) << bad;
  }
  EXPECT_EQ(FormatMib(512), "512Mi");
  EXPECT_EQ(FormatMib(16384), "16Gi");
  EXPECT_EQ(FormatMib(1536), "1.5Gi");
}

TEST(ParseDurationTest, AcceptsUnitsAndCombinations) {
  EXPECT_EQ(ParseDuration("500ms"), 500ms);
  EXPECT_EQ(ParseDuration("10s"), 10s);
  EXPECT_EQ(ParseDuration("2m"), 2min);
  EXPECT_EQ(ParseDuration("1h"), 1h);
  EXPECT_EQ(ParseDuration("1m30s"), 90s);
  EXPECT_EQ(ParseDuration("1s500ms"), 1500ms);
}

TEST(ParseDurationTest, RejectsBareNumbersUnknownUnitsAndGarbage) {
  for (const char* bad : {"", "10", "10x", "s", "-1s", "1.5s", "10s junk", "9999h"}) {
    EXPECT_FALSE(ParseDuration(bad)) << bad;
  }
  EXPECT_THAT(ParseDuration("10").error().message, HasSubstr("needs a unit"));
}

TEST(TableTest, AlignsColumnsOnTheWidestCellWithoutTrailingBlanks) {
  Table table({"NAME", "STATE", "IMAGE"});
  table.AddRow({"web", "running", "demo"});
  table.AddRow({"database-1", "-", ""});
  std::ostringstream out;
  table.Render(out);
  EXPECT_EQ(out.str(),
            "NAME         STATE     IMAGE\n"
            "web          running   demo\n"
            "database-1   -\n");
}

TEST(NamesTest, EnumsPrintShortLowercaseNames) {
  EXPECT_EQ(RuntimeName(v1::RUNTIME_MICROVM), "microvm");
  EXPECT_EQ(RuntimeName(v1::RUNTIME_UNSPECIFIED), "-");
  EXPECT_EQ(GuestStateName(v1::GUEST_STATE_RESTARTING), "restarting");
  EXPECT_EQ(BootModeName(v1::BOOT_MODE_SNAPSHOT), "snapshot");
  EXPECT_EQ(BootModeName(v1::BOOT_MODE_UNSPECIFIED), "auto");
  EXPECT_EQ(RestartPolicyName(v1::RESTART_POLICY_ON_FAILURE), "on-failure");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_GUEST_RUNNING), "running");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_IMAGE_ADDED), "image-added");
  EXPECT_EQ(ParseRestartPolicy("on-failure"), v1::RESTART_POLICY_ON_FAILURE);
  EXPECT_EQ(ParseRuntime("container"), v1::RUNTIME_CONTAINER);
  EXPECT_FALSE(ParseRuntime("docker"));
  EXPECT_EQ(ParseBootMode("cold"), v1::BOOT_MODE_COLD);
  EXPECT_FALSE(ParseBootMode("warm"));
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::INVALID_ARGUMENT), "INVALID_ARGUMENT");
}

TEST(FormatTest, EndpointsAgesBytesAndMillis) {
  v1::Endpoint endpoint;
  endpoint.set_host_port(8080);
  EXPECT_EQ(EndpointUrl(endpoint), "http://127.0.0.1:8080");
  endpoint.set_host_ip("::1");
  EXPECT_EQ(EndpointUrl(endpoint), "http://[::1]:8080");

  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000));
  google::protobuf::Timestamp then;
  EXPECT_EQ(FormatAge(then, now), "-");
  then.set_seconds(1'000'000 - 42);
  EXPECT_EQ(FormatAge(then, now), "42s");
  then.set_seconds(1'000'000 - 7 * 60);
  EXPECT_EQ(FormatAge(then, now), "7m");
  then.set_seconds(1'000'000 - 3 * 3600);
  EXPECT_EQ(FormatAge(then, now), "3h");
  then.set_seconds(1'000'000 - 5 * 86400);
  EXPECT_EQ(FormatAge(then, now), "5d");
  then.set_seconds(1'000'000 + 5);
  EXPECT_EQ(FormatAge(then, now), "0s");

  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
  EXPECT_EQ(FormatMillis(10s), "10s");
  EXPECT_EQ(FormatMillis(1500ms), "1500ms");
}

TEST(ContextTest, EndpointComesFromFlagThenEnvironmentThenDefault) {
  std::ostringstream out, err;
  Context defaulted(out, err, "");
  EXPECT_EQ(defaulted.Endpoint(), "unix:/run/phoenix/agent.sock");
  Context from_env(out, err, "127.0.0.1:9999");
  EXPECT_EQ(from_env.Endpoint(), "127.0.0.1:9999");
  from_env.options().endpoint = "127.0.0.1:1234";
  EXPECT_EQ(from_env.Endpoint(), "127.0.0.1:1234");
}

TEST(ContextTest, SupervisorAddressComesFromFlagThenEnvironmentThenDefault) {
  std::ostringstream out, err;
  Context defaulted(out, err, "");
  EXPECT_EQ(defaulted.SupervisorAddress(), "127.0.0.1:7400");
  EXPECT_FALSE(defaulted.SupervisorConfigured());
  Context from_env(out, err, "", SupervisorEnv{"127.0.0.1:9400", "", ""});
  EXPECT_EQ(from_env.SupervisorAddress(), "127.0.0.1:9400");
  EXPECT_TRUE(from_env.SupervisorConfigured());
  defaulted.options().supervisor = "127.0.0.1:1234";
  EXPECT_EQ(defaulted.SupervisorAddress(), "127.0.0.1:1234");
  EXPECT_TRUE(defaulted.SupervisorConfigured());
}

TEST(ContextTest, RpcErrorsPrintMessageCodeAndHints) {
  std::ostringstream out, err;
  Context ctx(out, err, "127.0.0.1:7070");
  EXPECT_EQ(ctx.RpcError(grpc::Status(grpc::StatusCode::NOT_FOUND, "guest web not found")), 1);
  EXPECT_EQ(err.str(), "error: guest web not found (NOT_FOUND)\n");
  err.str("");
  EXPECT_EQ(ctx.RpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")), 1);
  EXPECT_THAT(err.str(), HasSubstr("error: connection refused (UNAVAILABLE)\n"));
  EXPECT_THAT(err.str(), HasSubstr("is phoenix-agent running at 127.0.0.1:7070?"));
  EXPECT_THAT(err.str(), HasSubstr("tools/quickstart"));
  err.str("");
  // The agent answered: something behind it is unavailable. No "is it running?" hint.
  EXPECT_EQ(ctx.RpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                      "the microvm runtime is not reachable now (micro-VMs "
                                      "unavailable: /dev/kvm is a software KVM)")),
            1);
  EXPECT_THAT(err.str(), HasSubstr("micro-VMs unavailable"));
  EXPECT_THAT(err.str(), Not(HasSubstr("hint:")));
  err.str("");
  EXPECT_EQ(ctx.UsageError("guest run", "missing guest NAME"), 2);
  EXPECT_EQ(err.str(), "error: missing guest NAME\nsee 'phoenixctl guest run --help'\n");
}

TEST(JsonTest, UsesProtoFieldNamesEnumNamesAndOneLineForStreams) {
  v1::Event event;
  event.set_sequence(7);
  event.set_type(v1::EVENT_TYPE_GUEST_HEALTHY);
  event.set_guest("web");
  auto line = ToJson(event, /*multiline=*/false);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->find('\n'), std::string::npos);
  EXPECT_THAT(*line, HasSubstr("\"type\":\"EVENT_TYPE_GUEST_HEALTHY\""));
  EXPECT_THAT(*line, HasSubstr("\"guest\":\"web\""));
  EXPECT_THAT(*line, HasSubstr("\"message\":\"\""));  // zero values are printed too
}

}  // namespace
}  // namespace phoenix::ctl
