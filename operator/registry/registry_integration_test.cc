// RegistryClient against a real registry: Debian's docker-registry (distribution v2), started
// here on a free 127.0.0.1 port with its storage in a temporary directory, holding an image
// made with umoci and pushed with skopeo. Three setups: plain HTTP without auth, plain HTTP
// with htpasswd (Basic), and HTTPS with a throwaway CA plus htpasswd. Token auth is covered
// by the recorded answers in registry_client_test.cc. Missing tools fail the test: a skipped
// test would hide that the client was never checked against the real thing.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "operator/kube/subprocess.h"
#include "operator/registry/docker_config.h"
#include "operator/registry/image_reference.h"
#include "operator/registry/registry_client.h"

extern char** environ;

namespace kmm::registry {
namespace {

using ::testing::HasSubstr;

constexpr char kUser[] = "kmm-builder";
constexpr char kRepository[] = "team/driver";
constexpr char kTag[] = "6.1.0-57-amd64";
constexpr char kLabel[] = "kmm.test/kernel=6.1.0-57-amd64";  // in the image config

// The program `name` on PATH, or empty.
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// A port nothing listens on now. The registry binds it a moment later; Registry::Start
// retries on another port if something took it in between.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return connected;
}

// A throwaway password per run, so nothing in the repository is a credential.
std::string RandomPassword() {
  std::random_device device;
  std::uniform_int_distribution<int> digit(0, 35);
  std::string password = "pw-";
  for (int i = 0; i < 16; ++i) password += "abcdefghijklmnopqrstuvwxyz0123456789"[digit(device)];
  return password;
}

// A running docker-registry, stopped (SIGTERM, then SIGKILL) when destroyed, so a failed
// assertion never leaves one behind.
class Registry {
 public:
  struct Options {
    std::string htpasswd_file;  // Basic auth when set
    std::string certificate;    // HTTPS when set, with `key`
    std::string key;
  };

  static absl::StatusOr<std::unique_ptr<Registry>> Start(const std::string& binary,
                                                         const kmm::testing::TempDir& dir,
                                                         const Options& options) {
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      const int port = FreePort();
      if (port == 0) return absl::InternalError("no free port on 127.0.0.1");
      std::string config =
          absl::StrCat("version: 0.1\n", "log: {level: info}\n",
                       "storage:\n  filesystem: {rootdirectory: ", dir.Join("storage"), "}\n",
                       "http:\n  addr: \"127.0.0.1:", port, "\"\n");
      if (!options.certificate.empty()) {
        absl::StrAppend(&config, "  tls: {certificate: ", options.certificate,
                        ", key: ", options.key, "}\n");
      }
      if (!options.htpasswd_file.empty()) {
        absl::StrAppend(
            &config, "auth:\n  htpasswd: {realm: kmm-test, path: ", options.htpasswd_file, "}\n");
      }
      const std::string config_file = dir.WriteFile("registry.yaml", config);
      auto registry = std::unique_ptr<Registry>(new Registry(dir.Join("registry.log"), port));
      RETURN_IF_ERROR(registry->Spawn(binary, config_file));
      absl::Status ready = registry->WaitUntilListening(absl::Seconds(15));
      if (ready.ok()) return registry;
      last_error = std::string(ready.message());
      // Most likely the port was taken between FreePort and the bind: try another.
    }
    return absl::UnavailableError(last_error);
  }

  ~Registry() { Stop(); }
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  const std::string& log_file() const { return log_file_; }

 private:
  Registry(std::string log_file, int port) : log_file_(std::move(log_file)), port_(port) {}

  absl::Status Spawn(const std::string& binary, const std::string& config_file) {
    // Opened here, not in the child, which may only make async-signal-safe calls.
    const int log = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) return ErrnoError(errno, "opening " + log_file_);
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    std::vector<std::string> args = {binary, "serve", config_file};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Killed with the test even when the test dies without running destructors (a crash,
      // ctest's timeout).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(null, STDIN_FILENO);
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      execve(binary.c_str(), argv.data(), environ);
      _exit(127);
    }
    const int fork_error = errno;
    close(log);
    if (null >= 0) close(null);
    if (pid_ < 0) return ErrnoError(fork_error, "fork for " + binary);
    return absl::OkStatus();
  }

  absl::Status WaitUntilListening(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::UnavailableError(
            absl::StrCat("docker-registry exited before listening on port ", port_, "; its log:\n",
                         kmm::testing::ReadFile(log_file_)));
      }
      // Its own "listening" line, not just an open port: another program may have taken the
      // port since FreePort, and then this registry exits instead.
      if (absl::StrContains(kmm::testing::ReadFile(log_file_),
                            absl::StrCat("listening on 127.0.0.1:", port_)) &&
          Accepts(port_)) {
        return absl::OkStatus();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Stop();
    return absl::DeadlineExceededError(absl::StrCat("docker-registry did not listen on port ",
                                                    port_, " within ",
                                                    absl::FormatDuration(timeout)));
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // 5 s to exit
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string log_file_;
  int port_;
  pid_t pid_ = -1;
};

class RegistryIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Debian package of each tool; `make deps` installs them all.
    const std::vector<std::pair<std::string, std::string>> tools = {
        {"docker-registry", "docker-registry"},
        {"skopeo", "skopeo"},
        {"umoci", "umoci"},
        {"htpasswd", "apache2-utils"},
        {"openssl", "openssl"}};
    std::vector<std::string> missing;
    for (const auto& [tool, package] : tools) {
      tools_[tool] = FindOnPath(tool);
      if (tools_[tool].empty())
        missing.push_back(absl::StrCat(tool, " (Debian package ", package, ")"));
    }
    ASSERT_TRUE(missing.empty()) << "this test needs " << absl::StrJoin(missing, ", ")
                                 << " on PATH; run `make deps`";
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    // The tools see a HOME of their own: no credentials or policy of this machine's user.
    env_ = {absl::StrCat("PATH=", std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"),
            "HOME=" + dir_.Join("home"), "LC_ALL=C"};
    std::filesystem::create_directories(dir_.Join("home"));
    password_ = RandomPassword();
    ASSERT_NO_FATAL_FAILURE(MakeImageLayout());
  }

  void TearDown() override {
    if (HasFailure() && registry_ != nullptr) {
      std::cerr << "docker-registry's log:\n" << kmm::testing::ReadFile(registry_->log_file());
    }
    registry_.reset();
  }

  // Runs a tool to completion; fails the test unless it exits 0. Returns its stdout.
  std::string Run(const std::string& tool, const std::vector<std::string>& args) {
    kube::ProcessSpec spec;
    spec.path = tools_.at(tool);
    spec.argv = {tool};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = env_;
    spec.timeout = absl::Seconds(30);
    absl::StatusOr<kube::ProcessResult> result = kube::RealProcessRunner().Run(spec);
    const std::string command = absl::StrJoin(spec.argv, " ");
    if (!result.ok()) {
      ADD_FAILURE() << command << ": " << result.status();
      return "";
    }
    EXPECT_TRUE(result->exit_code == 0 && result->term_signal == 0 && !result->timed_out)
        << command << " failed (exit " << result->exit_code << ", signal " << result->term_signal
        << (result->timed_out ? ", timed out" : "") << "):\n"
        << result->stderr_text;
    return result->stdout_text;
  }

  // One small image with one layer, as an OCI layout: what skopeo pushes.
  void MakeImageLayout() {
    const std::string layout = dir_.Join("layout");
    const std::string image = layout + ":" + kTag;  // umoci's --image; skopeo's is "oci:" + that
    std::vector<std::string> rootless;
    if (geteuid() != 0) rootless = {"--rootless"};
    Run("umoci", {"init", "--layout", layout});
    Run("umoci", {"new", "--image", image});
    std::vector<std::string> unpack = {"unpack"};
    unpack.insert(unpack.end(), rootless.begin(), rootless.end());
    unpack.insert(unpack.end(), {"--image", image, dir_.Join("bundle")});
    Run("umoci", unpack);
    dir_.WriteFile("bundle/rootfs/opt/lib/modules/" + std::string(kTag) + "/kmm_ci_a.ko",
                   "not really a module\n");
    Run("umoci", {"repack", "--image", image, dir_.Join("bundle")});
    Run("umoci", {"config", "--image", image, "--config.label", kLabel});
    ASSERT_FALSE(::testing::Test::HasFailure()) << "could not make the OCI layout";
  }

  // Pushes the image as REGISTRY/team/driver:TAG; returns the digest skopeo reports.
  std::string Push(const std::vector<std::string>& transport_flags) {
    std::vector<std::string> args = {"copy", "--quiet", "--insecure-policy", "--digestfile",
                                     dir_.Join("pushed-digest")};
    args.insert(args.end(), transport_flags.begin(), transport_flags.end());
    args.push_back("oci:" + dir_.Join("layout") + ":" + kTag);
    args.push_back(absl::StrCat("docker://", registry_->host(), "/", kRepository, ":", kTag));
    Run("skopeo", args);
    std::string digest(
        absl::StripAsciiWhitespace(kmm::testing::ReadFile(dir_.Join("pushed-digest"))));
    EXPECT_THAT(digest, ::testing::StartsWith("sha256:")) << "skopeo reported no digest";
    return digest;
  }

  void StartRegistry(const Registry::Options& options) {
    absl::StatusOr<std::unique_ptr<Registry>> registry =
        Registry::Start(tools_.at("docker-registry"), dir_, options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
  }

  // htpasswd's bcrypt file with kUser and this run's password.
  std::string MakeHtpasswd() {
    std::string line = Run("htpasswd", {"-Bbn", kUser, password_});
    return dir_.WriteFile("htpasswd", std::string(absl::StripTrailingAsciiWhitespace(line)) + "\n");
  }

  ImageReference Image(const std::string& repository, const std::string& tag_or_digest) const {
    const char separator = absl::StartsWith(tag_or_digest, "sha256:") ? '@' : ':';
    absl::StatusOr<ImageReference> image = ParseImageReference(
        absl::StrCat(registry_->host(), "/", repository, std::string(1, separator), tag_or_digest));
    EXPECT_TRUE(image.ok()) << image.status();
    return image.value_or(ImageReference{});
  }

  // The credentials for `image` from a .dockerconfigjson as `kubectl create secret
  // docker-registry` writes it, parsed as the operator parses the Secret.
  std::optional<Credentials> FromDockerConfig(const ImageReference& image,
                                              const std::string& password) const {
    nlohmann::json config = {
        {"auths",
         {{registry_->host(),
           {{"username", kUser},
            {"password", password},
            {"auth", absl::Base64Escape(absl::StrCat(kUser, ":", password))}}}}}};
    absl::StatusOr<DockerConfig> parsed = DockerConfig::Parse(config.dump(), "Secret test/pull");
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (!parsed.ok()) return std::nullopt;
    std::optional<Credentials> credentials = parsed->Find(image.domain, image.repository);
    EXPECT_TRUE(credentials.has_value()) << "no entry for " << image.ToString();
    return credentials;
  }

  kmm::testing::TempDir dir_;
  std::map<std::string, std::string> tools_;
  std::vector<std::string> env_;
  std::string password_;
  std::unique_ptr<Registry> registry_;  // declared after dir_: stopped before it is removed
};

Transport PlainHttp() {
  Transport transport;
  transport.insecure = true;
  return transport;
}

void ExpectPresent(const absl::StatusOr<ImageStatus>& status, const std::string& digest) {
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(status->exists);
  EXPECT_EQ(status->digest, digest);
}

void ExpectAbsent(const absl::StatusOr<ImageStatus>& status) {
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_FALSE(status->exists);
  EXPECT_EQ(status->digest, "");
}

void ExpectError(const absl::StatusOr<ImageStatus>& status, absl::StatusCode code,
                 const std::string& substring, const ImageReference& image) {
  ASSERT_FALSE(status.ok()) << "expected " << absl::StatusCodeToString(code)
                            << ", got exists=" << status->exists;
  EXPECT_EQ(status.status().code(), code) << status.status();
  EXPECT_THAT(std::string(status.status().message()), HasSubstr(substring));
  EXPECT_THAT(std::string(status.status().message()), HasSubstr(image.ToString()))
      << "errors name the image";
}

TEST_F(RegistryIntegrationTest, PlainHttpWithoutAuthTellsPresentFromAbsent) {
  ASSERT_NO_FATAL_FAILURE(StartRegistry({}));
  const std::string digest = Push({"--dest-tls-verify=false"});
  ASSERT_FALSE(HasFailure());
  // What another client reads back is what the push reported.
  EXPECT_EQ(
      absl::StripAsciiWhitespace(Run(
          "skopeo", {"inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                     absl::StrCat("docker://", registry_->host(), "/", kRepository, ":", kTag)})),
      digest);

  RegistryClient client;
  ExpectPresent(client.Check(Image(kRepository, kTag), std::nullopt, PlainHttp()), digest);
  ExpectPresent(client.Check(Image(kRepository, digest), std::nullopt, PlainHttp()), digest);
  // The labels: manifest, then config blob, both from the registry's storage.
  absl::StatusOr<ImageStatus> labelled =
      client.Check(Image(kRepository, kTag), std::nullopt, PlainHttp(), /*with_labels=*/true);
  ExpectPresent(labelled, digest);
  if (labelled.ok()) {
    EXPECT_THAT(labelled->labels, ::testing::Contains(::testing::Pair("kmm.test/kernel", kTag)));
  }
  ExpectAbsent(client.Check(Image(kRepository, "6.1.0-58-amd64"), std::nullopt, PlainHttp(),
                            /*with_labels=*/true));
  ExpectAbsent(client.Check(Image(kRepository, "6.1.0-58-amd64"), std::nullopt, PlainHttp()));
  ExpectAbsent(client.Check(Image("team/other", kTag), std::nullopt, PlainHttp()));
  ExpectAbsent(client.Check(Image(kRepository, "sha256:" + std::string(64, '0')), std::nullopt,
                            PlainHttp()));
}

TEST_F(RegistryIntegrationTest, PlainHttpWithBasicAuthUsesTheSecretsCredentials) {
  Registry::Options options;
  options.htpasswd_file = MakeHtpasswd();
  ASSERT_NO_FATAL_FAILURE(StartRegistry(options));
  const std::string digest =
      Push({"--dest-tls-verify=false", "--dest-creds", absl::StrCat(kUser, ":", password_)});
  ASSERT_FALSE(HasFailure());

  // One client for every check, as in the operator: what one check caches must not decide
  // the next one with other credentials.
  RegistryClient client;
  const ImageReference image = Image(kRepository, kTag);
  ExpectPresent(client.Check(image, FromDockerConfig(image, password_), PlainHttp()), digest);
  const ImageReference absent = Image(kRepository, "6.1.0-58-amd64");
  ExpectAbsent(client.Check(absent, FromDockerConfig(absent, password_), PlainHttp()));
  // The config blob is behind the same Basic auth as the manifest.
  absl::StatusOr<ImageStatus> labelled =
      client.Check(image, FromDockerConfig(image, password_), PlainHttp(), /*with_labels=*/true);
  ExpectPresent(labelled, digest);
  if (labelled.ok()) {
    EXPECT_THAT(labelled->labels, ::testing::Contains(::testing::Pair("kmm.test/kernel", kTag)));
  }
  ExpectError(client.Check(image, FromDockerConfig(image, "wrong-" + password_), PlainHttp()),
              absl::StatusCode::kPermissionDenied, "refused the credentials from imageRepoSecret",
              image);
  ExpectError(client.Check(image, std::nullopt, PlainHttp()), absl::StatusCode::kUnauthenticated,
              "imageRepoSecret", image);
  // The right credentials still work after the refusals.
  ExpectPresent(client.Check(image, FromDockerConfig(image, password_), PlainHttp()), digest);
}

TEST_F(RegistryIntegrationTest, HttpsTrustsTheGivenCaOrSkipsVerificationWhenAsked) {
  // A CA and a server certificate for 127.0.0.1 (an IP SAN: curl checks it, not the CN).
  const std::string ca_key = dir_.Join("ca.key"), ca_cert = dir_.Join("certs/ca.crt");
  const std::string key = dir_.Join("server.key"), csr = dir_.Join("server.csr"),
                    cert = dir_.Join("server.crt");
  std::filesystem::create_directories(dir_.Join("certs"));
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                       "-nodes"};
  std::vector<std::string> args = {"req", "-x509"};
  args.insert(args.end(), ec.begin(), ec.end());
  args.insert(args.end(), {"-keyout", ca_key, "-out", ca_cert, "-days", "1", "-subj",
                           "/CN=kmm-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                           "-addext", "keyUsage=critical,keyCertSign"});
  Run("openssl", args);
  args = {"req"};
  args.insert(args.end(), ec.begin(), ec.end());
  args.insert(args.end(), {"-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"});
  Run("openssl", args);
  const std::string extensions =
      dir_.WriteFile("server.ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  Run("openssl", {"x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial", "1",
                  "-days", "1", "-extfile", extensions, "-out", cert});
  ASSERT_FALSE(HasFailure()) << "could not make the certificates";

  Registry::Options options;
  options.htpasswd_file = MakeHtpasswd();
  options.certificate = cert;
  options.key = key;
  ASSERT_NO_FATAL_FAILURE(StartRegistry(options));
  // skopeo trusts the *.crt files of --dest-cert-dir as CAs.
  const std::string digest = Push(
      {"--dest-cert-dir", dir_.Join("certs"), "--dest-creds", absl::StrCat(kUser, ":", password_)});
  ASSERT_FALSE(HasFailure());

  RegistryClient client;
  const ImageReference image = Image(kRepository, kTag);
  const std::optional<Credentials> credentials = FromDockerConfig(image, password_);

  Transport with_ca;
  with_ca.ca_file = ca_cert;
  ExpectPresent(client.Check(image, credentials, with_ca), digest);
  ExpectAbsent(client.Check(Image(kRepository, "6.1.0-58-amd64"), credentials, with_ca));

  ExpectError(client.Check(image, credentials, Transport{}), absl::StatusCode::kUnavailable,
              "registryTLS.insecureSkipTLSVerify", image);

  Transport skip;
  skip.skip_tls_verify = true;
  ExpectPresent(client.Check(image, credentials, skip), digest);

  // Plain HTTP to a TLS port: the registry's refusal is an error, never "absent".
  absl::StatusOr<ImageStatus> plain = client.Check(image, credentials, PlainHttp());
  ASSERT_FALSE(plain.ok()) << "plain HTTP to an HTTPS registry gave exists=" << plain->exists;
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kUnavailable) << plain.status();
  EXPECT_THAT(std::string(plain.status().message()), HasSubstr(image.ToString()));
  EXPECT_THAT(std::string(plain.status().message()), HasSubstr("unset registryTLS.insecure"));
}

}  // namespace
}  // namespace kmm::registry
