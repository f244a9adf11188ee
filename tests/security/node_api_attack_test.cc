// Attacks on a node through its own API and files, against the real phoenix-agent (docs/security.md
// lists the threats and which test here proves each defence):
//  - who may talk to the agent: a root-only Unix socket; plaintext TCP only by an explicit flag,
//    and only on a real loopback address (not "127.evil.example");
//  - inputs that used to be accepted: env names with '=' or empty, health paths that inject
//    headers, stop timeouts that never end;
//  - image import that followed links out of the image and stored setuid files; recipes others
//    can edit;
//  - a caller holding every API thread.
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <gmock/gmock.h>

#include "tests/security/support/agent_under_attack.h"

namespace phoenix::security {
namespace {

using ::testing::HasSubstr;

class NodeApiAttackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    recipes_ = fs::path(Env("PHOENIX_TEST_TMP").empty() ? "/tmp" : Env("PHOENIX_TEST_TMP")) /
               ("recipes-" + std::to_string(::getpid()));
    fs::create_directories(recipes_ / "tiny");
    std::ofstream(recipes_ / "tiny" / "build.sh")
        << "#!/bin/sh\nset -e\nout=\"$1\"\nmkdir -p \"$out\"\necho K >\"$out/vmlinux\"\n"
           "echo I >\"$out/initrd.img\"\nprintf 'PHOENIX_IMAGE_FORMAT=1\\nNAME=tiny\\n"
           "KERNEL=vmlinux\\nINITRD=initrd.img\\nRUNTIMES=vm\\n' >\"$out/manifest.env\"\n";
    fs::permissions(recipes_ / "tiny" / "build.sh", fs::perms(0755));
    agent_.Start("security-node-api", {"--recipes", recipes_.string(), "--max-streams", "4"});
  }
  static void TearDownTestSuite() {
    agent_.Stop();
    fs::remove_all(recipes_);
  }

  static v1::GuestSpec ContainerSpec(const std::string& name) {
    v1::GuestSpec spec;
    spec.set_name(name);
    spec.set_image("demo");
    spec.set_runtime(v1::RUNTIME_CONTAINER);
    return spec;
  }

  static AgentUnderAttack agent_;
  static fs::path recipes_;
};

AgentUnderAttack NodeApiAttackTest::agent_;
fs::path NodeApiAttackTest::recipes_;

// What connect(2) to the agent's socket gives a process running as `uid`.
int ConnectErrnoAs(uid_t uid, const fs::path& socket_path) {
  int pipe_fds[2];
  PHX_CHECK(::pipe(pipe_fds) == 0);
  pid_t pid = ::fork();
  PHX_CHECK(pid >= 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    int result = -1;
    if (::setgid(uid) == 0 && ::setuid(uid) == 0) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      result = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
    }
    (void)!::write(pipe_fds[1], &result, sizeof(result));
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  int result = -2;
  (void)!::read(pipe_fds[0], &result, sizeof(result));
  ::close(pipe_fds[0]);
  ::waitpid(pid, nullptr, 0);
  return result;
}

TEST_F(NodeApiAttackTest, OnlyRootCanReachTheAgentApi) {
  struct stat st {};
  ASSERT_EQ(::stat(agent_.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the agent's socket must be owner-only";
  EXPECT_EQ(st.st_uid, ::geteuid());
  ASSERT_EQ(::geteuid(), 0u) << "the attack needs root to drop to another user";
  EXPECT_EQ(ConnectErrnoAs(0, agent_.socket()), 0) << "root connects";
  EXPECT_EQ(ConnectErrnoAs(65534, agent_.socket()), EACCES) << "nobody is refused";
}

TEST_F(NodeApiAttackTest, PlaintextTcpNeedsTheLoudFlagAndARealLoopbackAddress) {
  const std::string bin = Env("PHOENIX_AGENT_BIN");
  const fs::path dir = agent_.state_dir() / "refused";
  auto tcp = testing::RunCommand({bin, "--listen", "127.0.0.1:0", "--state-dir", dir.string()});
  EXPECT_EQ(tcp.exit_code, 2) << tcp.output;
  EXPECT_THAT(tcp.output, HasSubstr("--insecure-tcp"));
  auto evil = testing::RunCommand(
      {bin, "--insecure-tcp", "--listen", "127.evil.example:7070", "--state-dir", dir.string()});
  EXPECT_EQ(evil.exit_code, 2) << evil.output;
  EXPECT_THAT(evil.output, HasSubstr("not a loopback address"));
  auto abstract = testing::RunCommand(
      {bin, "--insecure-tcp", "--listen", "unix-abstract:phx", "--state-dir", dir.string()});
  EXPECT_EQ(abstract.exit_code, 2) << "an abstract socket has no permissions\n" << abstract.output;
  auto wildcard = testing::RunCommand(
      {bin, "--insecure-tcp", "--listen", "0.0.0.0:7070", "--state-dir", dir.string()});
  EXPECT_EQ(wildcard.exit_code, 2) << wildcard.output;
}

TEST_F(NodeApiAttackTest, HostileSpecsAreRefusedNamingTheField) {
  struct Case {
    const char* title;
    std::function<void(v1::GuestSpec&)> mutate;
    const char* field;
  } cases[] = {
      {"env name with '='", [](v1::GuestSpec& s) { (*s.mutable_env())["PATH=/evil:"] = "x"; },
       "spec.env[\"PATH=/evil:\"]"},
      {"empty env name", [](v1::GuestSpec& s) { (*s.mutable_env())[""] = "x"; }, "spec.env"},
      {"health path injecting a header",
       [](v1::GuestSpec& s) {
         auto* port = s.add_ports();
         port->set_guest_port(80);
         s.mutable_health()->mutable_http()->set_port(80);
         s.mutable_health()->mutable_http()->set_path("/health HTTP/1.1\r\nHost: evil\r\n\r\n");
       },
       "spec.health.http.path"},
  };
  for (const Case& c : cases) {
    v1::GuestSpec spec = ContainerSpec("hostile");
    c.mutate(spec);
    grpc::Status s = agent_.Run(spec);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.title;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field)) << c.title << ": " << s.error_message();
  }
}

TEST_F(NodeApiAttackTest, AStopThatWouldNeverEndIsRefused) {
  v1::StopGuestRequest req;
  req.set_name("anything");
  req.set_timeout_ms(uint32_t{1} << 31);
  v1::Guest out;
  grpc::ClientContext ctx;
  AgentUnderAttack::Deadline(ctx, 10s);
  grpc::Status s = agent_.stub().StopGuest(&ctx, req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("timeout_ms"));
}

// A recipe output directory an attacker controls: tiny artifacts plus whatever `plant` adds.
fs::path HostileImage(const fs::path& dir, const std::string& kernel_line) {
  fs::remove_all(dir);
  fs::create_directories(dir / "rootfs" / "bin");
  std::ofstream(dir / "initrd.img") << "I";
  std::ofstream(dir / "rootfs" / "bin" / "tool") << "#!/bin/sh\n";
  std::ofstream(dir / "manifest.env")
      << "PHOENIX_IMAGE_FORMAT=1\nNAME=hostile\n"
      << kernel_line
      << "\nINITRD=initrd.img\nROOTFS=rootfs\nCOMMAND=/bin/tool\nRUNTIMES=container\n";
  return dir;
}

TEST_F(NodeApiAttackTest, ImportReadsNothingOutsideTheImageDirectory) {
  const fs::path dir = HostileImage(agent_.state_dir() / "hostile", "KERNEL=k");
  fs::create_symlink("/etc/shadow", dir / "k");
  grpc::Status s = agent_.Import(dir, "hostile");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("symlink"));

  // Through a linked directory on the way.
  HostileImage(dir, "KERNEL=etc/shadow");
  fs::create_directory_symlink("/etc", dir / "etc");
  s = agent_.Import(dir, "hostile");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  // No copy of the host's secrets reached the store.
  const std::string shadow = Slurp("/etc/shadow");
  for (auto it = fs::recursive_directory_iterator(agent_.state_dir() / "images");
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file() && !shadow.empty()) {
      EXPECT_NE(Slurp(it->path()), shadow) << it->path();
    }
  }
}

TEST_F(NodeApiAttackTest, ImportPlantsNoSetuidFilesAndTheStoreIsRootOnly) {
  const fs::path dir = HostileImage(agent_.state_dir() / "setuid", "KERNEL=k");
  std::ofstream(dir / "k") << "K";
  fs::permissions(dir / "rootfs" / "bin" / "tool", fs::perms(04755));
  v1::Image image;
  grpc::Status s = agent_.Import(dir, "setuid", &image);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const fs::path store = agent_.state_dir() / "images";
  int files = 0;
  for (auto it = fs::recursive_directory_iterator(store / "blobs");
       it != fs::recursive_directory_iterator(); ++it) {
    struct stat st {};
    ASSERT_EQ(::lstat(it->path().c_str(), &st), 0);
    if (S_ISREG(st.st_mode)) ++files;
    EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID), 0u) << it->path();
  }
  EXPECT_GT(files, 0);
  struct stat st {};
  ASSERT_EQ(::stat(store.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0011u) << "others may only traverse to a blob they know";
  for (const char* sub : {"manifests", "tags", "tmp"}) {
    ASSERT_EQ(::stat((store / sub).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0077, 0u) << sub;
  }
}

TEST_F(NodeApiAttackTest, RecipesOthersCanEditAreNotRun) {
  auto build = [&] {
    v1::BuildImageRequest req;
    req.set_recipe("tiny");
    grpc::ClientContext ctx;
    AgentUnderAttack::Deadline(ctx, 120s);
    auto reader = agent_.stub().BuildImage(&ctx, req);
    v1::BuildImageProgress progress;
    while (reader->Read(&progress)) {
    }
    return reader->Finish();
  };
  fs::permissions(recipes_ / "tiny", fs::perms(0777));
  grpc::Status s = build();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("world-writable"));
  fs::permissions(recipes_ / "tiny", fs::perms(0755));
  s = build();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(NodeApiAttackTest, StreamsCannotHoldEveryApiThread) {
  // The agent runs with --max-streams 4: a caller opening more gets RESOURCE_EXHAUSTED for the
  // rest instead of parking every thread, unary calls keep working, and streams open again once
  // they close.
  constexpr int kStreams = 8;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::Event>>> streams;
  for (int i = 0; i < kStreams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    // Admitted streams wait for events until this deadline; refused ones end at once.
    contexts.back()->set_deadline(std::chrono::system_clock::now() + 6s);
    // Each watcher on its own connection, as separate clients would be.
    grpc::ChannelArguments args;
    args.SetInt("phoenix.test.watcher", i);  // distinct arguments: no shared subchannel
    stubs.push_back(v1::AgentService::NewStub(grpc::CreateCustomChannel(
        "unix:" + agent_.socket().string(), grpc::InsecureChannelCredentials(), args)));
    streams.push_back(stubs.back()->WatchEvents(contexts.back().get(), {}));
    std::this_thread::sleep_for(300ms);  // one watcher after another, as clients come and go
  }
  std::this_thread::sleep_for(2s);
  // Meanwhile a unary call still finds a thread.
  {
    v1::NodeInfo info;
    grpc::ClientContext ctx;
    AgentUnderAttack::Deadline(ctx, 5s);
    grpc::Status s = agent_.stub().GetNodeInfo(&ctx, {}, &info);
    EXPECT_TRUE(s.ok()) << "the API went deaf while streams were open: " << s.error_message();
  }
  int exhausted = 0;
  std::string codes;
  for (int i = 0; i < kStreams; ++i) {
    grpc::Status s = streams[i]->Finish();
    codes += std::to_string(s.error_code()) + " ";
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
  }
  SCOPED_TRACE("status codes: " + codes);
  EXPECT_EQ(exhausted, kStreams - 4) << "streams beyond the bound must be turned away";
  // The handlers notice their clients left within a second or so; then streams open again.
  EXPECT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext ctx;
        AgentUnderAttack::Deadline(ctx, 5s);
        auto stream = agent_.stub().WatchEvents(&ctx, {});
        std::this_thread::sleep_for(500ms);
        ctx.TryCancel();
        return stream->Finish().error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED;
      },
      20s));
}

}  // namespace
}  // namespace phoenix::security
