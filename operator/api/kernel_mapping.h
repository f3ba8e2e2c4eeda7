// Which kernel mapping of a Module applies to a node's kernel, and the settings that result
// once the mapping's overrides and the $VAR substitutions are applied — upstream KMM's
// KernelMapper, used by the operator for every (Module, kernel version) pair it reconciles.
//
// Thread-safe: compiled regular expressions are cached process-wide behind a mutex.
#ifndef KMM_OPERATOR_API_KERNEL_MAPPING_H_
#define KMM_OPERATOR_API_KERNEL_MAPPING_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "operator/api/module.h"

namespace kmm::api {

// The values of the variables that image names, sign.unsignedImage and sign.filesToSign may
// reference as $VAR or ${VAR}.
struct KernelVariables {
  std::string kernel_full_version;  // KERNEL_FULL_VERSION: the normalized kernel version
  std::string kernel_version;       // KERNEL_VERSION: the same
  std::string kernel_xyz;           // KERNEL_XYZ: "5.4.196" of "5.4.196-108.356.amzn2.x86_64"
  std::string kernel_x;             // KERNEL_X: "5"
  std::string kernel_y;             // KERNEL_Y: "4"
  std::string kernel_z;             // KERNEL_Z: "196"
  std::string mod_name;             // MOD_NAME: metadata.name
  std::string mod_namespace;        // MOD_NAMESPACE: metadata.namespace
  bool operator==(const KernelVariables&) const = default;
};

// The kernel version KMM works with for a node: status.nodeInfo.kernelVersion without one
// trailing '+' (which some distribution kernels append).
std::string_view NodeKernelVersion(std::string_view node_info_kernel_version);

// Upstream's kernel.NormalizeVersion: every character other than [A-Za-z0-9._-] becomes '_'
// (one '_' per UTF-8 character).
std::string NormalizeKernelVersion(std::string_view kernel_version);

// As upstream: KERNEL_FULL_VERSION and KERNEL_VERSION are the normalized kernel; X, Y and Z are
// its first three components split at '.', ',' and '-', and KERNEL_XYZ joins them with '.'.
// Upstream refuses a kernel with fewer than three components; here the missing ones are empty
// (no real kernel release has fewer than three).
KernelVariables KernelVariablesFor(std::string_view kernel_version, std::string_view module_name,
                                   std::string_view module_namespace);

// Replaces $VAR and ${VAR} for the eight variables above, as upstream does with
// github.com/a8m/envsubst in its relaxed mode:
//  - an unknown variable becomes the empty string ("$FOO" -> "");
//  - "$$" is a literal "$"; a "$" not followed by a name or "{" stays as written;
//  - ${VAR-default}, ${VAR:-default}, ${VAR=default}, ${VAR:=default} use `default` when VAR is
//    unknown (the ':' forms also when it is empty); ${VAR+alt} and ${VAR:+alt} give `alt` when
//    VAR is known and "" otherwise; `default`/`alt` may themselves reference variables.
// Names are [A-Za-z0-9_]+ and greedy ("$KERNEL_X_Y" is the unknown KERNEL_X_Y). Where upstream
// fails (an unclosed "${"), the text is left as written; ValidateModule reports those.
std::string SubstituteKernelVariables(std::string_view text, const KernelVariables& variables);

// True when `text` holds a "${NAME" that is never closed, which upstream refuses at reconcile
// time ("closing brace expected").
bool HasUnclosedVariableReference(std::string_view text);

// The settings for one (Module, kernel) pair, overrides and substitutions applied.
struct ResolvedMapping {
  size_t mapping_index = 0;    // index into spec.moduleLoader.container.kernelMappings
  std::string kernel_version;  // the node's kernel, trailing '+' removed
  KernelVariables variables;
  // The mapping's containerImage, else the container's; substituted.
  std::string container_image;
  // The mapping's list when it sets one (even empty), else the container's; the deprecated
  // single-module field, when set (the mapping's winning), replaces both.
  std::vector<std::string> in_tree_modules_to_remove;
  // Upstream's merge when both the container and the mapping set `build`: the container's,
  // with the mapping's dockerfileConfigMap, the mapping's buildArgs overriding by name
  // (replaced in place; new names appended in name order), the mapping's secrets appended.
  // When only one sets it, that one. Build args are not substituted (the build passes them
  // literally, as upstream); BuildArgsForKernel adds the injected ones.
  std::optional<Build> build;
  // Upstream's merge when both set `sign`: the container's, with the mapping's non-empty
  // unsignedImage and its keySecret/certSecret, and the mapping's filesToSign appended.
  // unsignedImage and filesToSign are substituted.
  std::optional<Sign> sign;
  // The mapping's registryTLS when set, else the container's (default: both false).
  TLSOptions registry_tls;
  bool operator==(const ResolvedMapping&) const = default;
};

// The first kernel mapping of `module` that matches `node_kernel` (trailing '+' removed):
// `literal` by exact comparison, `regexp` by unanchored RE2 search (Go's regexp.MatchString).
// nullopt when the Module has no moduleLoader, no mapping matches, or — as upstream, which
// stops with an error — the first regexp reached does not compile.
std::optional<ResolvedMapping> FindKernelMapping(const Module& module,
                                                 std::string_view node_kernel);

// The build args the image build receives: `build.build_args` with upstream's injected ones
// overriding or appended — KERNEL_VERSION and KERNEL_FULL_VERSION (the kernel as matched, not
// normalized), MOD_NAME, MOD_NAMESPACE.
std::vector<BuildArg> BuildArgsForKernel(const Build& build, const ResolvedMapping& mapping);

// Upstream's BuildArgOverrider: each override replaces the arg of the same name in place; the
// overrides matching no arg are appended in name order.
std::vector<BuildArg> ApplyBuildArgOverrides(std::vector<BuildArg> args,
                                             const std::vector<BuildArg>& overrides);

}  // namespace kmm::api

#endif  // KMM_OPERATOR_API_KERNEL_MAPPING_H_
