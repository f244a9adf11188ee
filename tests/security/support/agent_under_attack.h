// Test support for tests/security: a real phoenix-agent on a private state dir and its own Unix
// socket, as an attacker finds it on a node, plus the small gRPC helpers the attacks share.
// Test code only; one instance per test suite, used from the test's thread.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "phoenix/v1/agent.grpc.pb.h"
#include "tests/integration/support/process.h"

namespace phoenix::security {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

inline std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Polls `pred` every 250 ms until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(250ms);
  }
  return pred();
}

class AgentUnderAttack {
 public:
  // Starts phoenix-agent with `--listen unix:<state>/agent.sock` and `extra` flags.
  void Start(const std::string& name, std::vector<std::string> extra = {}) {
    const std::string tmp = Env("PHOENIX_TEST_TMP").empty() ? "/tmp" : Env("PHOENIX_TEST_TMP");
    state_dir_ = fs::path(tmp) / (name + "-" + std::to_string(::getpid()));
    fs::remove_all(state_dir_);
    fs::create_directories(state_dir_);
    socket_ = state_dir_ / "agent.sock";
    const fs::path ready = state_dir_ / "agent.port";
    std::vector<std::string> argv = {Env("PHOENIX_AGENT_BIN"),
                                     "--listen",
                                     "unix:" + socket_.string(),
                                     "--state-dir",
                                     state_dir_.string(),
                                     "--port-file",
                                     ready.string(),
                                     "--log-level",
                                     "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = testing::ChildProcess::Spawn(argv, log().string());
    ASSERT_TRUE(child) << child.error().ToString();
    process_ = std::move(*child);
    // The port file appears once the API serves (0: a Unix socket).
    ASSERT_TRUE(testing::WaitForIntFile(ready.string(), 60s)) << "agent did not start:\n"
                                                              << Slurp(log());
    stub_ = v1::AgentService::NewStub(
        grpc::CreateChannel("unix:" + socket_.string(), grpc::InsecureChannelCredentials()));
  }

  void Stop() {
    if (stub_) {
      v1::ListGuestsResponse guests;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 10s);
      if (stub_->ListGuests(&ctx, {}, &guests).ok()) {
        for (const auto& g : guests.guests()) DeleteGuest(g.spec().name());
      }
    }
    process_.KillAndWait(SIGTERM, 10s);
    fs::remove_all(state_dir_);
  }

  v1::AgentService::Stub& stub() { return *stub_; }
  const fs::path& state_dir() const { return state_dir_; }
  const fs::path& socket() const { return socket_; }
  fs::path log() const { return state_dir_.string() + ".log"; }

  static void Deadline(grpc::ClientContext& ctx, std::chrono::seconds s = 60s) {
    ctx.set_deadline(std::chrono::system_clock::now() + s);
  }

  grpc::Status Import(const fs::path& dir, const std::string& name, v1::Image* out = nullptr) {
    v1::ImportImageRequest req;
    req.set_directory(dir.string());
    req.set_name(name);
    v1::Image image;
    grpc::ClientContext ctx;
    Deadline(ctx, 300s);
    grpc::Status s = stub_->ImportImage(&ctx, req, &image);
    if (out != nullptr) *out = image;
    return s;
  }

  grpc::Status Run(const v1::GuestSpec& spec, v1::Guest* out = nullptr) {
    v1::RunGuestRequest req;
    *req.mutable_spec() = spec;
    v1::Guest guest;
    grpc::ClientContext ctx;
    Deadline(ctx);
    grpc::Status s = stub_->RunGuest(&ctx, req, &guest);
    if (out != nullptr) *out = guest;
    return s;
  }

  std::optional<v1::Guest> Get(const std::string& name) {
    v1::GetGuestRequest req;
    req.set_name(name);
    v1::Guest guest;
    grpc::ClientContext ctx;
    Deadline(ctx, 10s);
    if (!stub_->GetGuest(&ctx, req, &guest).ok()) return std::nullopt;
    return guest;
  }

  void DeleteGuest(const std::string& name) {
    v1::DeleteGuestRequest req;
    req.set_name(name);
    v1::DeleteGuestResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx, 120s);
    stub_->DeleteGuest(&ctx, req, &resp);
  }

  // The guest's console log as the API serves it.
  std::string Logs(const std::string& name) {
    v1::GuestLogsRequest req;
    req.set_name(name);
    grpc::ClientContext ctx;
    Deadline(ctx, 10s);
    auto reader = stub_->GuestLogs(&ctx, req);
    std::string out;
    v1::LogChunk chunk;
    while (reader->Read(&chunk)) out += chunk.data();
    reader->Finish();
    return out;
  }

  // Waits until the guest's console holds `marker`; returns the console.
  std::string WaitForLog(const std::string& name, const std::string& marker,
                         std::chrono::milliseconds timeout) {
    std::string text;
    WaitFor(
        [&] {
          text = Logs(name);
          return text.find(marker) != std::string::npos;
        },
        timeout);
    return text;
  }

 private:
  fs::path state_dir_, socket_;
  testing::ChildProcess process_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
};

}  // namespace phoenix::security
