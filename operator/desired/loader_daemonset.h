// The loader DaemonSet of one (Module, kernel) pair, built by a pure function
// (docs/design.md §7.5): the operator creates exactly this object; tests compare it whole.
//
// Each loader pod: an init container installs kmm-copy (static) from the loader image into a
// shared volume; a second runs it inside the module image to copy
// <dirName>/lib/modules/<kernel> (and the firmware) out, so module images need no shell; the
// main container runs `kmm-loader run` with the config in its environment, loads, reports
// ready through `kmm-loader status`, and on SIGTERM unloads (retrying a busy module within
// the grace period). docs/design.md §4 explains why DaemonSets, OnDelete and in-process plugins.
#ifndef KMM_OPERATOR_DESIRED_LOADER_DAEMONSET_H_
#define KMM_OPERATOR_DESIRED_LOADER_DAEMONSET_H_

#include <string>
#include <string_view>

#include "loader/config.h"
#include "nlohmann/json.hpp"
#include "operator/api/kernel_mapping.h"
#include "operator/api/module.h"
#include "operator/desired/settings.h"

namespace kmm::desired {

// <module>-loader-<hash of the kernel and version>: stable per kernel (and per Module version,
// which gets its own DaemonSet so nodes move between versions one by one), within name limits.
std::string LoaderDaemonSetName(std::string_view module_name, std::string_view kernel,
                                std::string_view version = "");

// The kmm-loader config (loader/config.h) for one kernel: the modprobe spec with dirName
// pointing into the pod's copy, in-tree modules to remove (the mapping's win), firmware and,
// when the Module asks for it, the built-in device plugin. The DaemonSet carries it as
// loader::SerializeLoaderConfig writes it.
loader::LoaderConfig LoaderConfigFor(const api::Module& module, const api::ResolvedMapping& mapping,
                                     std::string_view kernel, const OperatorSettings& settings);

// `kernel` is the nodes' status.nodeInfo.kernelVersion, as the loader will see it (uname -r).
nlohmann::json LoaderDaemonSetFor(const api::Module& module, const api::ResolvedMapping& mapping,
                                  std::string_view kernel, const OperatorSettings& settings);

// The controller reference every object we create for a Module carries.
nlohmann::json OwnerReferenceTo(const api::Module& module);

// Whether the Module runs kmm's own device plugin inside its loader pods.
bool UsesBuiltinDevicePlugin(const api::Module& module);

}  // namespace kmm::desired

#endif  // KMM_OPERATOR_DESIRED_LOADER_DAEMONSET_H_
