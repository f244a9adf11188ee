#include "agent/frontdoor/haproxy_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "agent/frontdoor/haproxy_runtime.h"
#include "agent/process/process.h"

namespace phoenix::agent::frontdoor {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kToolTimeout = 10s;

std::string ReadTail(const fs::path& file, size_t max) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max) text = text.substr(text.size() - max);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::optional<int> ReadPidFile(const fs::path& file) {
  std::ifstream in(file);
  int pid = 0;
  if (!(in >> pid) || pid <= 1) return std::nullopt;
  return pid;
}

// The NUL-separated command line of `pid`, as words.
std::vector<std::string> CommandLine(int pid) {
  std::ifstream in(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::vector<std::string> words;
  std::string word;
  while (std::getline(in, word, '\0')) words.push_back(word);
  return words;
}

bool ServesConfig(int pid, const fs::path& config) {
  const std::vector<std::string> argv = CommandLine(pid);
  if (argv.empty() || fs::path(argv[0]).filename() != "haproxy") return false;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-f" && argv[i + 1] == config.string()) return true;
  }
  return false;
}

}  // namespace

std::vector<int> HaproxyProcesses(const fs::path& config) {
  std::vector<int> serving;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int pid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc() ||
        pid <= 1) {
      continue;
    }
    if (ServesConfig(pid, config)) serving.push_back(pid);
  }
  return serving;
}

std::optional<MasterLine> ParseShowProcMaster(std::string_view show_proc) {
  std::istringstream in{std::string(show_proc)};
  std::string line;
  while (std::getline(in, line)) {
    // "11305           master          2 [failed: 1]   0d00h00m04s     2.6.12-1+deb12u4"
    std::istringstream words(line);
    std::string pid, type, reloads, failed_word, failed;
    if (!(words >> pid >> type >> reloads >> failed_word >> failed) || type != "master") continue;
    if (failed_word != "[failed:" || failed.empty() || failed.back() != ']') return std::nullopt;
    failed.pop_back();
    MasterLine out;
    auto number = [](const std::string& text, int& value) {
      return std::from_chars(text.data(), text.data() + text.size(), value).ec == std::errc();
    };
    if (!number(pid, out.pid) || out.pid <= 1 || !number(reloads, out.reloads) ||
        !number(failed, out.failed)) {
      return std::nullopt;
    }
    return out;
  }
  return std::nullopt;
}

HaproxyProcess::HaproxyProcess(HaproxyFiles files, std::string binary)
    : files_(std::move(files)), binary_(std::move(binary)) {}

bool HaproxyProcess::Running() const {
  if (!pidfd_) return false;
  pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) == 0;  // a pidfd becomes readable when its process exits
}

Result<std::string> HaproxyProcess::Master(std::string_view command) const {
  return HaproxyRuntime(files_.master_socket()).Execute(command);
}

Result<void> HaproxyProcess::Watch(int pid) {
  UniqueFd fd(PidfdOpen(pid));
  if (!fd) return ErrnoError(fmt::format("pidfd_open of HAProxy's master (pid {})", pid));
  // The pidfd pins the process; checking the command line after opening it proves the pid was not
  // reused by something else in between.
  if (!ServesConfig(pid, files_.config())) {
    return NotFound(fmt::format("pid {} is not HAProxy serving {}", pid, files_.config().string()));
  }
  pid_ = pid;
  pidfd_ = std::move(fd);
  return {};
}

Result<void> HaproxyProcess::WaitUntilAnswering(std::chrono::milliseconds bound) const {
  const auto deadline = Clock::now() + bound;
  HaproxyRuntime api(files_.api_socket());
  for (;;) {
    auto master = Master("show proc");
    auto worker = api.Execute("show info");
    if (master && worker) return {};
    if (!Running()) {
      return FailedPrecondition("HAProxy exited while starting: " + ReadTail(files_.log(), 2000));
    }
    if (Clock::now() > deadline) {
      return MakeError(ErrorCode::kDeadlineExceeded,
                       "HAProxy is not answering on its sockets: " +
                           (master ? worker.error() : master.error()).message);
    }
    std::this_thread::sleep_for(20ms);
  }
}

Result<void> HaproxyProcess::Adopt(std::chrono::milliseconds bound) {
  const std::optional<int> pid = ReadPidFile(files_.pid_file());
  if (!pid) return NotFound("no HAProxy pid file at " + files_.pid_file().string());
  PHX_TRY(Watch(*pid));
  if (auto answering = WaitUntilAnswering(bound); !answering) {
    pid_ = -1;
    pidfd_.Reset();
    return MakeError(ErrorCode::kUnavailable, fmt::format("HAProxy pid {} does not answer: {}",
                                                          *pid, answering.error().message));
  }
  return {};
}

Result<void> HaproxyProcess::Start() {
  pidfd_.Reset();
  pid_ = -1;
  // Never two on one config: SO_REUSEPORT would let a stale HAProxy keep taking a share of the
  // connections. Start is called only for one found dead or unusable.
  for (int pid : HaproxyProcesses(files_.config())) ::kill(pid, SIGKILL);
  UniqueFd log(::open(files_.log().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log) return ErrnoError("open " + files_.log().string());
  std::error_code ec;
  fs::remove(files_.pid_file(), ec);
  // -D: a daemon in its own session, so it outlives the agent. -W: master-worker. -S: the master
  // CLI, for reloads, only for root (0600 in a 0700 directory).
  CommandOptions options;
  options.timeout = kToolTimeout;
  options.output_fd = log.get();
  auto run = RunCommand({binary_, "-D", "-W", "-S", files_.master_socket().string() + ",mode,600",
                         "-p", files_.pid_file().string(), "-f", files_.config().string()},
                        options);
  if (!run) return std::unexpected(run.error());
  if (!run->ok()) {
    return FailedPrecondition("HAProxy did not start (" + run->Describe() +
                              "): " + ReadTail(files_.log(), 2000));
  }
  // The master names itself on its CLI (its pid file may be written after the launcher exits).
  const auto deadline = Clock::now() + kToolTimeout;
  for (;;) {
    auto answer = Master("show proc");
    std::optional<MasterLine> master = answer ? ParseShowProcMaster(*answer) : std::nullopt;
    if (master && Watch(master->pid)) break;
    if (Clock::now() > deadline) {
      return FailedPrecondition("HAProxy started but its master does not answer on " +
                                files_.master_socket().string() + ": " +
                                ReadTail(files_.log(), 2000));
    }
    std::this_thread::sleep_for(20ms);
  }
  return WaitUntilAnswering(kToolTimeout);
}

Result<void> HaproxyProcess::Check(const fs::path& config_file) const {
  CommandOptions options;
  options.timeout = kToolTimeout;
  auto run = RunCommand({binary_, "-c", "-q", "-f", config_file.string()}, options);
  if (!run) return std::unexpected(run.error());
  if (!run->ok()) {
    std::string said = run->err.empty() ? run->out : run->err;
    while (!said.empty() && said.back() == '\n') said.pop_back();
    return InvalidArgument("config", "HAProxy rejects the configuration: " + said);
  }
  return {};
}

Result<MasterLine> HaproxyProcess::ReadMasterLine() const {
  auto answer = Master("show proc");
  if (!answer) return std::unexpected(answer.error());
  auto line = ParseShowProcMaster(*answer);
  if (!line) return Internal("cannot read HAProxy's \"show proc\": " + answer->substr(0, 200));
  return *line;
}

Result<void> HaproxyProcess::Reload() {
  if (!Running()) return Unavailable("HAProxy is not running");
  auto before = ReadMasterLine();
  if (!before) return std::unexpected(before.error());
  // The master answers nothing useful to "reload" and closes the socket while it re-executes; the
  // outcome shows in its counters once it answers again.
  (void)Master("reload");
  const auto deadline = Clock::now() + kToolTimeout;
  for (;;) {
    std::this_thread::sleep_for(20ms);
    if (!Running()) {
      return FailedPrecondition("HAProxy's master exited during a reload: " +
                                ReadTail(files_.log(), 2000));
    }
    auto after = ReadMasterLine();
    if (after && after->reloads > before->reloads) {
      if (after->failed > before->failed) {
        return FailedPrecondition(
            "HAProxy rejected the reload; the previous configuration "
            "keeps serving (see " +
            files_.log().string() + ")");
      }
      // The new worker answers on the admin socket once it has taken the listeners over.
      return WaitUntilAnswering(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(deadline - Clock::now(), Clock::duration(100ms))));
    }
    if (Clock::now() > deadline) {
      return MakeError(ErrorCode::kDeadlineExceeded,
                       "HAProxy did not report the reload's outcome within 10 s");
    }
  }
}

void HaproxyProcess::Stop(std::chrono::milliseconds grace) {
  if (!pidfd_) return;
  PidfdSendSignal(pidfd_.get(), SIGTERM);
  pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, static_cast<int>(grace.count())) == 0) {
    PidfdSendSignal(pidfd_.get(), SIGKILL);
    p.revents = 0;
    (void)::poll(&p, 1, 2000);
  }
  pidfd_.Reset();
  pid_ = -1;
}

}  // namespace phoenix::agent::frontdoor
