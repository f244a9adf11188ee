// api_fuzz: a generated-input fuzzer over every method of both Phoenix APIs
// (phoenix.v1.AgentService and phoenix.v1.Supervisor), driving the real handlers through an
// in-process gRPC server: the agent's GuestManager, ImageStore and AgentStore on a fake runtime,
// the supervisor's Controller on a memory state store with a real token store and one connected
// node.
//
// Each input is a request built from the method's descriptor by reflection: every field set with
// some probability, from a dictionary of hostile values (empty, huge, NUL, CR/LF, path traversal,
// the integer boundaries, unknown enum values) or at random; half of the spec-carrying requests
// start from a valid seed with a few fields replaced, to get past the first check. A finding is a
// crash (the process dies, under the sanitizers in their build), a hang (a unary call without an
// answer in 5 s), INTERNAL/UNKNOWN (a handler that did not say what was wrong with the input), or
// a response libprotobuf complains about (a string field that is not UTF-8).
//
//   api_fuzz [--service agent|supervisor|both] [--iterations N] [--seed S]
//
// Prints per method how often each status came back, and exits 1 on the first finding, printing
// the request. Deterministic for a seed. ctest runs a short pass (label security); the issue's
// 10^6 inputs per service are a manual run (docs/security.md has the command and its figures).
#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "agent/api/agent_service.h"
#include "agent/link/testing/agent_harness.h"
#include "phoenix/v1/agent.grpc.pb.h"
#include "phoenix/v1/supervisor.grpc.pb.h"
#include "supervisor/api/supervisor_service.h"
#include "supervisor/auth/enrolled_nodes.h"
#include "supervisor/auth/token_store.h"
#include "supervisor/reconcile/controller.h"
#include "supervisor/state/memory_state_store.h"

namespace phoenix::fuzz {
namespace {

namespace pb = google::protobuf;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- inputs ----

class Inputs {
 public:
  explicit Inputs(uint64_t seed) : rng_(seed) {}

  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::string String() {
    static const std::vector<std::string> kDictionary = {"",
                                                         "web",
                                                         "demo",
                                                         "demo:latest",
                                                         "web-0-1",
                                                         "a",
                                                         "0",
                                                         "-",
                                                         "web-",
                                                         "Web",
                                                         "../../etc",
                                                         "/",
                                                         "/etc/shadow",
                                                         "/proc/self",
                                                         "a/b",
                                                         "sha256:",
                                                         "sha256:" + std::string(64, 'f'),
                                                         "127.0.0.1",
                                                         "zone",
                                                         "z1",
                                                         "n1",
                                                         "cpu",
                                                         "rps",
                                                         "/health",
                                                         "/h\r\nX: y",
                                                         "/h h",
                                                         std::string("a\0b", 3),
                                                         "A=B",
                                                         "\xe2\x80\xae",
                                                         "\xf0\x9f\x94\xa5",
                                                         "%00",
                                                         "${HOME}",
                                                         "*",
                                                         "?",
                                                         std::string(64, 'a'),
                                                         std::string(1025, '/'),
                                                         std::string(70000, 'x')};
    if (Chance(0.7)) return kDictionary[Below(kDictionary.size())];
    // Random code points as UTF-8: proto3 strings must be UTF-8, and the protobuf parser refuses
    // any other bytes before a handler sees them.
    std::string s;
    for (size_t n = Below(Chance(0.9) ? 40 : 5000); n > 0; --n) {
      uint32_t cp = Chance(0.8) ? static_cast<uint32_t>(Below(0x80))
                                : static_cast<uint32_t>(0x80 + Below(0x10FFFF - 0x80));
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // surrogates are not scalar values
      AppendUtf8(cp, s);
    }
    return s;
  }

  static void AppendUtf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint64_t Unsigned(int bits) {
    static const std::vector<uint64_t> kEdges = {
        0,          1,          2,          16,         63,      64,      80,
        100,        1000,       65535,      65536,      3600000, 3600001, 0x7fffffff,
        0x80000000, 0xffffffff, 1ull << 32, 1ull << 62, ~0ull};
    uint64_t v = Chance(0.7) ? kEdges[Below(kEdges.size())] : rng_();
    return bits == 64 ? v : (v & 0xffffffffu);
  }

  void Fill(pb::Message* m, int depth) {
    const pb::Descriptor* d = m->GetDescriptor();
    const pb::Reflection* r = m->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (!Chance(depth == 0 ? 0.7 : 0.5)) continue;
      if (f->is_repeated()) {
        const size_t n = Chance(0.05) ? 300 : Below(4);
        for (size_t k = 0; k < n; ++k) AddOne(m, r, f, depth);
      } else {
        SetOne(m, r, f, depth);
      }
    }
  }

  // Replaces (or adds to) one field somewhere in `m`.
  void MutateOne(pb::Message* m, int depth) {
    const pb::Descriptor* d = m->GetDescriptor();
    if (d->field_count() == 0) return;
    const pb::FieldDescriptor* f = d->field(static_cast<int>(Below(d->field_count())));
    const pb::Reflection* r = m->GetReflection();
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() && depth < 4 &&
        Chance(0.7)) {
      MutateOne(r->MutableMessage(m, f), depth + 1);
    } else if (f->is_repeated()) {
      if (Chance(0.3)) r->ClearField(m, f);
      AddOne(m, r, f, depth);
    } else {
      SetOne(m, r, f, depth);
    }
  }

 private:
  int32_t EnumValue(const pb::FieldDescriptor* f) {
    const pb::EnumDescriptor* e = f->enum_type();
    if (Chance(0.8)) return e->value(static_cast<int>(Below(e->value_count())))->number();
    return static_cast<int32_t>(Unsigned(32));  // proto3 enums are open: unknown values arrive
  }

  void SetOne(pb::Message* m, const pb::Reflection* r, const pb::FieldDescriptor* f, int depth) {
    using F = pb::FieldDescriptor;
    switch (f->cpp_type()) {
      case F::CPPTYPE_INT32:
        r->SetInt32(m, f, static_cast<int32_t>(Unsigned(32)));
        break;
      case F::CPPTYPE_INT64:
        r->SetInt64(m, f, static_cast<int64_t>(Unsigned(64)));
        break;
      case F::CPPTYPE_UINT32:
        r->SetUInt32(m, f, static_cast<uint32_t>(Unsigned(32)));
        break;
      case F::CPPTYPE_UINT64:
        r->SetUInt64(m, f, Unsigned(64));
        break;
      case F::CPPTYPE_DOUBLE:
        r->SetDouble(m, f, Double());
        break;
      case F::CPPTYPE_FLOAT:
        r->SetFloat(m, f, static_cast<float>(Double()));
        break;
      case F::CPPTYPE_BOOL:
        r->SetBool(m, f, Chance(0.5));
        break;
      case F::CPPTYPE_ENUM:
        r->SetEnumValue(m, f, EnumValue(f));
        break;
      case F::CPPTYPE_STRING:
        r->SetString(m, f, String());
        break;
      case F::CPPTYPE_MESSAGE:
        if (depth < 4) Fill(r->MutableMessage(m, f), depth + 1);
        break;
    }
  }

  void AddOne(pb::Message* m, const pb::Reflection* r, const pb::FieldDescriptor* f, int depth) {
    using F = pb::FieldDescriptor;
    switch (f->cpp_type()) {
      case F::CPPTYPE_INT32:
        r->AddInt32(m, f, static_cast<int32_t>(Unsigned(32)));
        break;
      case F::CPPTYPE_INT64:
        r->AddInt64(m, f, static_cast<int64_t>(Unsigned(64)));
        break;
      case F::CPPTYPE_UINT32:
        r->AddUInt32(m, f, static_cast<uint32_t>(Unsigned(32)));
        break;
      case F::CPPTYPE_UINT64:
        r->AddUInt64(m, f, Unsigned(64));
        break;
      case F::CPPTYPE_DOUBLE:
        r->AddDouble(m, f, Double());
        break;
      case F::CPPTYPE_FLOAT:
        r->AddFloat(m, f, static_cast<float>(Double()));
        break;
      case F::CPPTYPE_BOOL:
        r->AddBool(m, f, Chance(0.5));
        break;
      case F::CPPTYPE_ENUM:
        r->AddEnumValue(m, f, EnumValue(f));
        break;
      case F::CPPTYPE_STRING:
        r->AddString(m, f, String());
        break;
      case F::CPPTYPE_MESSAGE:
        if (depth < 4) Fill(r->AddMessage(m, f), depth + 1);  // map entries are messages too
        break;
    }
  }

  double Double() {
    static const std::vector<double> kEdges = {0,    -1,   0.5, 1e308,    -1e308,   1e-308,
                                               100., 60.0, NAN, INFINITY, -INFINITY};
    return Chance(0.7) ? kEdges[Below(kEdges.size())]
                       : std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
  }

  std::mt19937_64 rng_;
};

// ---- protobuf's own complaints ----

// libprotobuf logs, and carries on, when a message it encodes or decodes breaks proto3's rules
// (a string field that is not UTF-8): clients in stricter languages would refuse such a response,
// so a handler that produces one is a finding too.
std::mutex protobuf_log_mu;
std::string protobuf_errors;  // guarded by protobuf_log_mu

void RecordProtobufLog(pb::LogLevel level, const char* file, int line, const std::string& message) {
  if (level < pb::LOGLEVEL_ERROR) return;
  std::lock_guard lock(protobuf_log_mu);
  protobuf_errors += std::string(file) + ":" + std::to_string(line) + ": " + message + "\n";
}

std::string TakeProtobufErrors() {
  std::lock_guard lock(protobuf_log_mu);
  return std::exchange(protobuf_errors, {});
}

// ---- calls ----

struct Method {
  std::string name;
  const pb::Descriptor* request;
  bool streaming = false;
  // Calls the method with `request` (of type `request`) under `ctx`; returns the final status.
  std::function<grpc::Status(grpc::ClientContext&, const pb::Message&)> call;
  const pb::Message* seed = nullptr;  // a valid request to mutate, when it has one
};

template <typename Req, typename Resp, typename Stub>
Method Unary(const char* name, Stub* stub,
             grpc::Status (Stub::*fn)(grpc::ClientContext*, const Req&, Resp*)) {
  return Method{name, Req::descriptor(), false,
                [stub, fn](grpc::ClientContext& ctx, const pb::Message& m) {
                  Resp resp;
                  return (stub->*fn)(&ctx, static_cast<const Req&>(m), &resp);
                }};
}

template <typename Req, typename Resp, typename Stub>
Method Streaming(const char* name, Stub* stub,
                 std::unique_ptr<grpc::ClientReader<Resp>> (Stub::*fn)(grpc::ClientContext*,
                                                                       const Req&)) {
  return Method{name, Req::descriptor(), true,
                [stub, fn](grpc::ClientContext& ctx, const pb::Message& m) {
                  auto reader = (stub->*fn)(&ctx, static_cast<const Req&>(m));
                  Resp item;
                  int read = 0;
                  while (read < 1000 && reader->Read(&item)) ++read;
                  if (read == 1000) ctx.TryCancel();  // enough of this stream
                  return reader->Finish();
                }};
}

struct Tally {
  std::map<std::string, std::map<grpc::StatusCode, uint64_t>> by_method;
  std::map<std::string, Clock::duration> time_in;  // total time spent in each method
};

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::UNKNOWN:
      return "UNKNOWN";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::INTERNAL:
      return "INTERNAL";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "?";
  }
}

// Whether `methods` holds every rpc of `service`: a method added to the proto but not here would
// go unfuzzed without anyone noticing.
bool CoversEveryRpc(const std::vector<Method>& methods, const char* service) {
  const pb::ServiceDescriptor* d = pb::DescriptorPool::generated_pool()->FindServiceByName(service);
  if (d == nullptr) return false;
  bool all = true;
  for (int i = 0; i < d->method_count(); ++i) {
    const std::string& name = d->method(i)->name();
    if (std::none_of(methods.begin(), methods.end(),
                     [&](const Method& m) { return m.name == name; })) {
      std::cerr << "api_fuzz: " << service << "/" << name << " is not in the method list\n";
      all = false;
    }
  }
  return all;
}

// Runs `iterations` inputs over `methods`; false on the first finding.
bool Fuzz(const std::string& service, std::vector<Method>& methods, uint64_t iterations,
          uint64_t seed) {
  const uint64_t progress_every = iterations >= 100000 ? iterations / 20 : 0;
  Inputs in(seed);
  Tally tally;
  const auto started = Clock::now();
  for (uint64_t i = 0; i < iterations; ++i) {
    // Streams mostly run to their deadline (WatchEvents follows): drawn a quarter as often.
    Method* pick = &methods[in.Below(methods.size())];
    if (pick->streaming && !in.Chance(0.25)) pick = &methods[in.Below(methods.size())];
    Method& m = *pick;
    std::unique_ptr<pb::Message> req(
        pb::MessageFactory::generated_factory()->GetPrototype(m.request)->New());
    if (m.seed != nullptr && in.Chance(0.5)) {
      req->CopyFrom(*m.seed);
      for (size_t k = 1 + in.Below(3); k > 0; --k) in.MutateOne(req.get(), 0);
    } else {
      in.Fill(req.get(), 0);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + (m.streaming ? 10ms : 5000ms));
    const auto call_started = Clock::now();
    grpc::Status s = m.call(ctx, *req);
    const auto took = Clock::now() - call_started;
    tally.by_method[m.name][s.error_code()]++;
    tally.time_in[m.name] += took;
    if (progress_every != 0 && (i + 1) % progress_every == 0) {
      std::fprintf(stderr, "api_fuzz %s: %llu inputs, %.1f s\n", service.c_str(),
                   static_cast<unsigned long long>(i + 1),
                   std::chrono::duration<double>(Clock::now() - started).count());
    }
    const bool hang = !m.streaming && s.error_code() == grpc::DEADLINE_EXCEEDED;
    const bool unexplained = s.error_code() == grpc::INTERNAL || s.error_code() == grpc::UNKNOWN;
    const std::string protobuf = TakeProtobufErrors();
    if (hang || unexplained || !protobuf.empty()) {
      std::string text;
      pb::TextFormat::Printer printer;
      printer.SetTruncateStringFieldLongerThan(200);
      printer.PrintToString(*req, &text);
      std::cout << "FINDING in " << service << "." << m.name << " after " << i << " inputs (seed "
                << seed << "): " << CodeName(s.error_code()) << ": " << s.error_message()
                << " (call took "
                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms)\n"
                << (protobuf.empty() ? "" : "libprotobuf: " + protobuf) << "request:\n"
                << text << std::endl;
      return false;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "api_fuzz %s: %llu inputs in %.1f s (%.0f/s), seed %llu, no crash, hang, "
      "INTERNAL/UNKNOWN or invalid response\n",
      service.c_str(), static_cast<unsigned long long>(iterations), seconds,
      static_cast<double>(iterations) / seconds, static_cast<unsigned long long>(seed));
  for (const auto& [method, codes] : tally.by_method) {
    std::printf("  %-16s %7.1f s ", method.c_str(),
                std::chrono::duration<double>(tally.time_in[method]).count());
    for (const auto& [code, n] : codes) {
      std::printf(" %s %llu", CodeName(code), static_cast<unsigned long long>(n));
    }
    std::printf("\n");
  }
  std::fflush(stdout);
  return true;
}

std::unique_ptr<grpc::Server> Serve(grpc::Service* service) {
  grpc::ServerBuilder builder;
  builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(4 << 20);
  return builder.BuildAndStart();
}

// ---- the agent ----

bool FuzzAgent(uint64_t iterations, uint64_t seed) {
  agent::testing::AgentHarness agent;
  agent::api::AgentServiceImpl::Options options;
  options.node = {"node-a", "zone-1", {{"rack", "r7"}}};
  options.capacity = {8, 8192};
  options.state_dir = agent.dir();
  options.version = "fuzz";
  options.max_streams = 256;  // streams that hit their deadline linger briefly server-side
  agent::api::AgentServiceImpl impl(agent.manager(), agent.images(), agent.store(), agent.hub(),
                                    agent.runtimes(), options);
  auto server = Serve(&impl);
  auto stub = v1::AgentService::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
  using S = v1::AgentService::Stub;

  v1::RunGuestRequest run_seed;
  run_seed.mutable_spec()->set_name("web");
  run_seed.mutable_spec()->set_image("demo");
  run_seed.mutable_spec()->set_memory_mib(128);
  run_seed.mutable_spec()->add_ports()->set_guest_port(80);
  run_seed.mutable_spec()->mutable_health()->mutable_http()->set_port(80);
  {
    grpc::ClientContext ctx;
    v1::Guest guest;
    if (!stub->RunGuest(&ctx, run_seed, &guest).ok()) {
      std::cerr << "api_fuzz: the seed guest does not run\n";
      return false;
    }
  }
  v1::GetGuestRequest name_seed;
  name_seed.set_name("web");

  std::vector<Method> methods = {
      Unary("RunGuest", stub.get(), &S::RunGuest),
      Unary("GetGuest", stub.get(), &S::GetGuest),
      Unary("ListGuests", stub.get(), &S::ListGuests),
      Unary("StartGuest", stub.get(), &S::StartGuest),
      Unary("StopGuest", stub.get(), &S::StopGuest),
      Unary("DeleteGuest", stub.get(), &S::DeleteGuest),
      Unary("KillGuest", stub.get(), &S::KillGuest),
      Streaming("GuestLogs", stub.get(), &S::GuestLogs),
      Streaming("WatchEvents", stub.get(), &S::WatchEvents),
      Unary("ListImages", stub.get(), &S::ListImages),
      Streaming("BuildImage", stub.get(), &S::BuildImage),
      Unary("ImportImage", stub.get(), &S::ImportImage),
      Unary("GetNodeInfo", stub.get(), &S::GetNodeInfo),
  };
  methods[0].seed = &run_seed;
  if (!CoversEveryRpc(methods, "phoenix.v1.AgentService")) return false;
  bool ok = Fuzz("agent", methods, iterations, seed);
  server->Shutdown(std::chrono::system_clock::now() + 2s);
  return ok;
}

// ---- the supervisor ----

class QuietSession : public supervisor::AgentSession {
 public:
  void SendAssignment(const supervisor::NodeAssignment&) override {}
  void SendFrontDoor(const supervisor::FrontDoorTable&) override {}
  void Close(const Error&) override {}
};

bool FuzzSupervisor(uint64_t iterations, uint64_t seed) {
  namespace sup = phoenix::supervisor;
  agent::testing::TempDir dir("phx-api-fuzz");
  auto tokens = sup::auth::TokenStore::Open(dir.path() / "tokens");
  if (!tokens) {
    std::cerr << "api_fuzz: " << tokens.error().ToString() << "\n";
    return false;
  }
  // RemoveNode needs enrolled nodes to remove (and, once removed, NOT_FOUND for them).
  auto nodes = sup::auth::EnrolledNodes::Open(dir.path() / "nodes");
  if (!nodes) {
    std::cerr << "api_fuzz: " << nodes.error().ToString() << "\n";
    return false;
  }
  for (const char* name : {"n1", "n2", "n3"}) {
    (void)(*nodes)->Enroll({.node = name,
                            .serial = std::string("5e71a1") + name,
                            .not_after = std::chrono::system_clock::now() + 24h});
  }
  sup::MemoryStateStore store;
  EventHub hub;
  boost::asio::io_context loop;
  auto work = boost::asio::make_work_guard(loop);
  sup::Controller::Options options;
  options.call_timeout = 10s;
  auto controller = std::make_unique<sup::Controller>(loop, store, hub, options);
  if (!controller->Recover()) return false;
  std::thread loop_thread([&] { loop.run(); });
  QuietSession session;
  sup::AgentHello hello;
  hello.node.name = "n1";
  hello.node.zone = "z1";
  hello.node.capacity = {8, 8192};
  hello.node.runtimes = {sup::RuntimeKind::kContainer, sup::RuntimeKind::kVm};
  hello.agent_version = "fuzz";
  controller->AgentConnected(&session, hello);

  bool ok = false;
  {
    sup::api::SupervisorServiceImpl impl(*controller, store, hub, tokens->get(),
                                         /*max_streams=*/256, nodes->get());
    auto server = Serve(&impl);
    auto stub = v1::Supervisor::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
    using S = v1::Supervisor::Stub;
    v1::CreateServiceRequest create_seed;
    v1::ServiceSpec* spec = create_seed.mutable_spec();
    spec->set_name("web");
    spec->set_replicas(2);
    spec->mutable_template_()->set_runtime(v1::RUNTIME_CONTAINER);
    spec->mutable_template_()->set_image("demo:latest");
    spec->mutable_template_()->add_ports()->set_guest_port(80);
    spec->mutable_spread()->set_attribute("zone");
    {
      grpc::ClientContext ctx;
      v1::Service out;
      grpc::Status s = stub->CreateService(&ctx, create_seed, &out);
      if (!s.ok()) std::cerr << "api_fuzz: the seed service: " << s.error_message() << "\n";
    }
    v1::SetAutoscaleRequest autoscale_seed;
    autoscale_seed.set_name("web");
    autoscale_seed.mutable_policy()->set_min_replicas(1);
    autoscale_seed.mutable_policy()->set_max_replicas(3);
    autoscale_seed.mutable_policy()->set_metric("cpu");
    autoscale_seed.mutable_policy()->set_target(60);

    std::vector<Method> methods = {
        Unary("CreateService", stub.get(), &S::CreateService),
        Unary("GetService", stub.get(), &S::GetService),
        Unary("ListServices", stub.get(), &S::ListServices),
        Unary("ScaleService", stub.get(), &S::ScaleService),
        Unary("SetAutoscale", stub.get(), &S::SetAutoscale),
        Unary("DeleteService", stub.get(), &S::DeleteService),
        Unary("ListNodes", stub.get(), &S::ListNodes),
        Unary("GetNode", stub.get(), &S::GetNode),
        Unary("DrainNode", stub.get(), &S::DrainNode),
        Unary("UndrainNode", stub.get(), &S::UndrainNode),
        Streaming("WatchEvents", stub.get(), &S::WatchEvents),
        Unary("CreateToken", stub.get(), &S::CreateToken),
        Unary("CreateJoinToken", stub.get(), &S::CreateJoinToken),
        Unary("ListTokens", stub.get(), &S::ListTokens),
        Unary("RevokeToken", stub.get(), &S::RevokeToken),
        Unary("RemoveNode", stub.get(), &S::RemoveNode),
    };
    v1::RemoveNodeRequest remove_seed;
    remove_seed.set_name("n2");
    methods[0].seed = &create_seed;
    methods[4].seed = &autoscale_seed;
    methods[15].seed = &remove_seed;
    if (!CoversEveryRpc(methods, "phoenix.v1.Supervisor")) return false;
    ok = Fuzz("supervisor", methods, iterations, seed);
    server->Shutdown(std::chrono::system_clock::now() + 2s);
  }
  controller->AgentGone(&session);
  std::promise<void> drained;
  boost::asio::post(loop, [&] { drained.set_value(); });
  drained.get_future().wait_for(5s);
  work.reset();
  loop.stop();
  loop_thread.join();
  return ok;
}

int Main(int argc, char** argv) {
  pb::SetLogHandler(&RecordProtobufLog);
  spdlog::set_level(spdlog::level::err);  // millions of refused inputs would each log a line
  std::string service = "both";
  uint64_t iterations = 20000, seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "api_fuzz: " << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--service") {
      service = value();
    } else if (arg == "--iterations") {
      iterations = std::stoull(value());
    } else if (arg == "--seed") {
      seed = std::stoull(value());
    } else {
      std::cerr << "usage: api_fuzz [--service agent|supervisor|both] [--iterations N] "
                   "[--seed S]\n";
      return 2;
    }
  }
  if (service != "agent" && service != "supervisor" && service != "both") {
    std::cerr << "api_fuzz: --service must be agent, supervisor or both\n";
    return 2;
  }
  bool ok = true;
  if (service != "supervisor") ok = FuzzAgent(iterations, seed) && ok;
  if (ok && service != "agent") ok = FuzzSupervisor(iterations, seed) && ok;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace phoenix::fuzz

int main(int argc, char** argv) { return phoenix::fuzz::Main(argc, argv); }
