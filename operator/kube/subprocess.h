// Running a short-lived helper program to completion: its stdout and stderr captured, stdin
// not connected (/dev/null), and a deadline after which it is killed. The seam kubeconfig
// credential plugins are run through (exec_credential_provider.h); tests run real scripts
// with it or put their own ProcessRunner in its place.
#ifndef KMM_OPERATOR_KUBE_SUBPROCESS_H_
#define KMM_OPERATOR_KUBE_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kmm::kube {

struct ProcessSpec {
  std::string path;               // the program, already resolved (no PATH search)
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // the whole environment, NAME=value
  absl::Duration timeout = absl::Seconds(60);
};

struct ProcessResult {
  int exit_code = 0;       // when it exited
  int term_signal = 0;     // when a signal ended it (0: it exited)
  bool timed_out = false;  // it ran past its timeout and was killed
  std::string stdout_text;
  std::string stderr_text;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs `spec` until it ends or its timeout passes (then it and its process group are
  // killed, and the result says timed_out). The error is for a program that could not be
  // started (NotFound, PermissionDenied, ... from errno); an exit code other than 0 is a
  // result.
  virtual absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec) = 0;
};

// posix_spawn with pipes; safe to call from several threads at once. Output beyond a few MiB
// per stream is dropped (a credential is a few KiB).
ProcessRunner& RealProcessRunner();

}  // namespace kmm::kube

#endif  // KMM_OPERATOR_KUBE_SUBPROCESS_H_
