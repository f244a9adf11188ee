#include "tools/phoenixctl/image_commands.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>

namespace phoenix::ctl {

namespace {

constexpr std::string_view kGroupHelp =
    R"(phoenixctl image: the agent's golden images. A golden image is content-addressed (sha256) with a
name:tag and carries what each runtime needs (disk or kernel+initramfs, container rootfs, and for
micro-VMs a golden memory snapshot). Guests never write to it.

Usage:
  phoenixctl image COMMAND [flags] [args]

Commands:
  ls                                   list images: NAME TAG ID RUNTIMES SIZE AGE
  build [RECIPE] [--name N] [--tag T]  run a recipe on the agent's host and import the result,
                                       streaming the recipe's output
  import DIR --name N [--tag T]        import a directory (manifest.env + artifacts) on the agent's host

Examples:
  phoenixctl image build demo
  phoenixctl image ls
  phoenixctl image import /var/tmp/myimage --name myimage --tag v1
)";

constexpr std::string_view kLsHelp = R"(phoenixctl image ls: list the agent's golden images.

Usage:
  phoenixctl image ls [-o json]

Columns: NAME TAG ID (short sha256) RUNTIMES (which runtimes it carries artifacts for) SIZE AGE.

Examples:
  phoenixctl image ls
  phoenixctl image ls -o json | jq -r '.images[] | .name + ":" + .tag'
)";

constexpr std::string_view kBuildHelp =
    R"(phoenixctl image build: run an image recipe on the agent's host (from the agent's recipe
directory) and import what it produces; prints the recipe's output as it runs.

Usage:
  phoenixctl image build [RECIPE] [--name N] [--tag T]

Arguments and flags:
  RECIPE      recipe name, e.g. demo (default demo)
  --name N    image name (default: the recipe name)
  --tag T     image tag (default latest)
  --timeout   how long the build may take (default 30m here, not the usual 30s)
  -o json     one JSON object per progress line; the last one carries the image

Examples:
  phoenixctl image build
  phoenixctl image build demo --tag v2
)";

constexpr std::string_view kImportHelp =
    R"(phoenixctl image import: import a prepared image directory into the agent's image store.

Usage:
  phoenixctl image import DIR --name N [--tag T]

DIR must be on the agent's host and hold manifest.env and the artifacts it names. A relative DIR
is made absolute against the current directory (for the usual single-host setup).

Flags:
  --name N   image name (required)
  --tag T    image tag (default latest)

Examples:
  phoenixctl image import /var/tmp/build/demo --name demo --tag v3
  phoenixctl image import ./out --name web
)";

int ImageLs(Context& ctx, std::span<const std::string> args) {
  FlagSet flags{"image ls"};
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kLsHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "image ls", &exit_code) == nullptr) return exit_code;
  if (!parsed->positionals.empty()) {
    return ctx.UsageError("image ls", "takes no arguments (got '" + parsed->positionals[0] + "')");
  }
  v1::ListImagesResponse response;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().ListImages(context.get(), v1::ListImagesRequest(), &response);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) return PrintJson(ctx, response);
  std::vector<v1::Image> images(response.images().begin(), response.images().end());
  std::ranges::sort(images, {}, [](const v1::Image& i) { return std::pair(i.name(), i.tag()); });
  RenderImageTable(images, std::chrono::system_clock::now(), ctx.out());
  return kExitOk;
}

std::string ImageRef(const v1::Image& image) {
  return image.name() + ":" + (image.tag().empty() ? "latest" : image.tag());
}

int ImageBuild(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "image build";
  v1::BuildImageRequest request;
  FlagSet flags{std::string(kCommand)};
  flags.String("name", request.mutable_name());
  flags.String("tag", request.mutable_tag());
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kBuildHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "image build", &exit_code) == nullptr) return exit_code;
  if (parsed->positionals.size() > 1) {
    return ctx.UsageError(kCommand, "expects at most one RECIPE");
  }
  request.set_recipe(parsed->positionals.empty() ? "demo" : parsed->positionals[0]);

  auto context = ctx.ContextWithDeadline(ctx.options().rpc_timeout_set
                                             ? ctx.options().rpc_timeout
                                             : std::chrono::milliseconds(kDefaultBuildTimeout));
  auto reader = ctx.Stub().BuildImage(context.get(), request);
  v1::BuildImageProgress progress;
  std::optional<v1::Image> built;
  while (reader->Read(&progress)) {
    if (progress.has_image()) built = progress.image();
    if (ctx.json()) {
      if (int rc = PrintJson(ctx, progress, /*multiline=*/false); rc != kExitOk) {
        context->TryCancel();
        reader->Finish();
        return rc;
      }
    } else if (!progress.line().empty()) {
      ctx.out() << progress.line() << (progress.line().ends_with('\n') ? "" : "\n");
    }
    ctx.out().flush();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ctx.RpcError(status);
  if (!built) {
    return ctx.Failure(
        Error{ErrorCode::kInternal, "the build stream ended without the built image", {}});
  }
  if (!ctx.json()) ctx.out() << "built " << ImageRef(*built) << " (" << built->id() << ")\n";
  return kExitOk;
}

int ImageImport(Context& ctx, std::span<const std::string> args) {
  constexpr std::string_view kCommand = "image import";
  v1::ImportImageRequest request;
  FlagSet flags{std::string(kCommand)};
  flags.String("name", request.mutable_name());
  flags.String("tag", request.mutable_tag());
  int exit_code = kExitOk;
  auto parsed = ParseCommandLine(ctx, flags, args, kImportHelp, &exit_code);
  if (!parsed) return exit_code;
  if (DialAgent(ctx, "image import", &exit_code) == nullptr) return exit_code;
  if (parsed->positionals.size() != 1) {
    return ctx.UsageError(kCommand, "expects exactly one DIR");
  }
  if (request.name().empty()) return ctx.UsageError(kCommand, "--name is required");
  std::error_code ec;
  std::filesystem::path directory = std::filesystem::absolute(parsed->positionals[0], ec);
  if (ec) {
    return ctx.UsageError(kCommand,
                          "cannot make " + parsed->positionals[0] + " absolute: " + ec.message());
  }
  request.set_directory(directory.lexically_normal().string());
  v1::Image image;
  auto context = ctx.UnaryContext();
  grpc::Status status = ctx.Stub().ImportImage(context.get(), request, &image);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) return PrintJson(ctx, image);
  ctx.out() << "imported " << ImageRef(image) << " (" << image.id() << ")\n";
  return kExitOk;
}

}  // namespace

int RunImageGroup(Context& ctx, std::span<const std::string> args) {
  static const std::map<std::string, CommandFn, std::less<>> kCommands = {
      {"ls", ImageLs}, {"build", ImageBuild}, {"import", ImageImport}};
  return DispatchGroup(ctx, "image", kGroupHelp, kCommands, args);
}

std::string ShortImageId(const std::string& id) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!id.starts_with(kPrefix)) return id.empty() ? "-" : id;
  return id.substr(0, kPrefix.size() + 12);
}

void RenderImageTable(std::span<const v1::Image> images, std::chrono::system_clock::time_point now,
                      std::ostream& out) {
  Table table({"NAME", "TAG", "ID", "RUNTIMES", "SIZE", "AGE"});
  for (const v1::Image& image : images) {
    std::string runtimes;
    for (int runtime : image.runtimes()) {
      runtimes += (runtimes.empty() ? "" : ",") + RuntimeName(static_cast<v1::Runtime>(runtime));
    }
    uint64_t size = 0;
    for (const v1::Artifact& artifact : image.artifacts()) size += artifact.size_bytes();
    table.AddRow({image.name(), image.tag().empty() ? "latest" : image.tag(),
                  ShortImageId(image.id()), runtimes.empty() ? "-" : runtimes, FormatBytes(size),
                  FormatAge(image.created_at(), now)});
  }
  table.Render(out);
}

}  // namespace phoenix::ctl
