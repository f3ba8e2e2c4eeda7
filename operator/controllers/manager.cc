#include "operator/controllers/manager.h"

#include <malloc.h>

#include <algorithm>

#include "common/status.h"
#include "operator/desired/labels.h"
#include "operator/kube/field_filter.h"
#include "spdlog/spdlog.h"

namespace kmm::controllers {
namespace {

nlohmann::json WithoutVersion(const kube::ObjectPtr& object) {
  nlohmann::json copy = *object;
  copy["metadata"].erase("resourceVersion");
  return copy;
}

// A Module as far as its reconcile depends on it: not the status it writes itself, so its
// own status updates do not come back as work.
nlohmann::json ModuleInput(const kube::ObjectPtr& module) {
  nlohmann::json copy = WithoutVersion(module);
  copy.erase("status");
  copy["metadata"].erase("managedFields");
  return copy;
}

// Whether a Module (as cached) builds from the ConfigMap `name` of its namespace, at the
// container level or in a kernel mapping. Reads the JSON in place: no parse per event.
bool BuildsFrom(const nlohmann::json& module, const std::string& name) {
  const nlohmann::json& container = kube::FieldAt(module, {"spec", "moduleLoader", "container"});
  auto names = [&](const nlohmann::json& holder) {
    const nlohmann::json& value = kube::FieldAt(holder, {"build", "dockerfileConfigMap", "name"});
    return value.is_string() && value.get_ref<const std::string&>() == name;
  };
  if (names(container)) return true;
  const nlohmann::json& mappings = kube::FieldAt(container, {"kernelMappings"});
  if (!mappings.is_array()) return false;
  return std::any_of(mappings.begin(), mappings.end(), names);
}

}  // namespace

Manager::Manager(kube::KubeClient& client, ManagerOptions options, kube::Registry& registry)
    : client_(client),
      options_(std::move(options)),
      client_metrics_(registry),
      controller_metrics_(registry),
      caches_(client, options_.watch_namespaces, &client_metrics_),
      events_(client, "kmm-operator", options_.identity),
      module_reconciler_(client, caches_, events_, options_.settings),
      node_reconciler_(client, caches_) {
  module_handler_.on_add = [this](const kube::ObjectPtr& module) {
    module_queue_.Add(kube::KeyOf(*module));
  };
  module_handler_.on_update = [this](const kube::ObjectPtr& old_module,
                                     const kube::ObjectPtr& module) {
    if (ModuleInput(old_module) == ModuleInput(module)) return;
    module_queue_.Add(kube::KeyOf(*module));
  };
  module_handler_.on_delete = [this](const kube::ObjectPtr& module) {
    module_queue_.Add(kube::KeyOf(*module));
  };
  caches_.modules.AddEventHandler(&module_handler_);

  // Nodes: their own kernel label, and every Module (selectors, kernels and taints decide
  // which Modules a node concerns; there are few Modules). Updates that change nothing we
  // cache (heartbeats are trimmed away) enqueue nothing.
  node_handler_.on_add = [this](const kube::ObjectPtr& node) {
    node_queue_.Add(kube::KeyOf(*node));
    EnqueueAllModules();
  };
  node_handler_.on_update = [this](const kube::ObjectPtr& old_node, const kube::ObjectPtr& node) {
    if (WithoutVersion(old_node) == WithoutVersion(node)) return;
    node_queue_.Add(kube::KeyOf(*node));
    EnqueueAllModules();
  };
  node_handler_.on_delete = [this](const kube::ObjectPtr&) { EnqueueAllModules(); };
  caches_.nodes.AddEventHandler(&node_handler_);

  owned_handler_.on_add = [this](const kube::ObjectPtr& object) { EnqueueOwner(object); };
  owned_handler_.on_update = [this](const kube::ObjectPtr&, const kube::ObjectPtr& object) {
    EnqueueOwner(object);
  };
  owned_handler_.on_delete = [this](const kube::ObjectPtr& object) { EnqueueOwner(object); };
  caches_.daemonsets.AddEventHandler(&owned_handler_);
  caches_.pods.AddEventHandler(&owned_handler_);
  caches_.jobs.AddEventHandler(&owned_handler_);

  // ConfigMaps are cached as hashes of their keys, so an update that changes no key's value
  // (most are heartbeats of other controllers) compares equal and enqueues nothing.
  config_map_handler_.on_add = [this](const kube::ObjectPtr& config_map) {
    EnqueueBuildsOf(config_map);
  };
  config_map_handler_.on_update = [this](const kube::ObjectPtr& old_config_map,
                                         const kube::ObjectPtr& config_map) {
    if (WithoutVersion(old_config_map) == WithoutVersion(config_map)) return;
    EnqueueBuildsOf(config_map);
  };
  config_map_handler_.on_delete = [this](const kube::ObjectPtr& config_map) {
    EnqueueBuildsOf(config_map);
  };
  caches_.configmaps.AddEventHandler(&config_map_handler_);
}

void Manager::EnqueueBuildsOf(const kube::ObjectPtr& config_map) {
  const nlohmann::json& ns = kube::FieldAt(*config_map, {"metadata", "namespace"});
  const nlohmann::json& name = kube::FieldAt(*config_map, {"metadata", "name"});
  if (!ns.is_string() || !name.is_string()) return;
  for (const kube::ObjectPtr& module : caches_.modules.List()) {
    if (kube::FieldAt(*module, {"metadata", "namespace"}) == ns &&
        BuildsFrom(*module, name.get<std::string>())) {
      module_queue_.Add(kube::KeyOf(*module));
    }
  }
}

Manager::~Manager() { Stop(); }

void Manager::EnqueueAllModules() {
  for (const kube::ObjectPtr& module : caches_.modules.List())
    module_queue_.AddAfter(kube::KeyOf(*module), options_.batch_owned_changes);
}

void Manager::EnqueueOwner(const kube::ObjectPtr& object) {
  const nlohmann::json& module =
      kube::FieldAt(*object, {"metadata", "labels", desired::kModuleNameLabel});
  const nlohmann::json& ns = kube::FieldAt(*object, {"metadata", "namespace"});
  if (module.is_string() && ns.is_string()) {
    module_queue_.AddAfter(kube::ObjectKey(ns.get<std::string>(), module.get<std::string>()),
                           options_.batch_owned_changes);
  }
}

absl::Status Manager::Liveness(absl::Duration stuck_after) const {
  const absl::Time now = absl::Now();
  for (kube::Informer* informer : const_cast<Caches&>(caches_).all()) {
    RETURN_IF_ERROR(informer->Liveness(now, informer->MaxSilence() + absl::Minutes(1)));
  }
  if (controllers_started_.load(std::memory_order_acquire)) {
    RETURN_IF_ERROR(module_controller_->Liveness(stuck_after));
    RETURN_IF_ERROR(node_controller_->Liveness(stuck_after));
  }
  return absl::OkStatus();
}

void Manager::StartCaches() {
  for (kube::Informer* informer : caches_.all()) {
    informer_threads_.emplace_back([this, informer] { informer->Run(stop_caches_); });
  }
  if (options_.release_memory_every > absl::ZeroDuration()) {
    informer_threads_.emplace_back([this] {
      while (!stop_caches_.WaitFor(options_.release_memory_every)) malloc_trim(0);
    });
  }
}

bool Manager::StartControllers(const kube::Cancellation& cancel, absl::Duration sync_timeout) {
  for (kube::Informer* informer : caches_.all()) {
    if (!informer->WaitForSync(cancel, sync_timeout)) {
      spdlog::error("the {} cache did not sync within {}", informer->options().resource.resource,
                    absl::FormatDuration(sync_timeout));
      return false;
    }
  }
  spdlog::info(
      "caches synced: {} Modules, {} Nodes, {} DaemonSets, {} Pods, {} Jobs, {} ConfigMaps",
      caches_.modules.Size(), caches_.nodes.Size(), caches_.daemonsets.Size(), caches_.pods.Size(),
      caches_.jobs.Size(), caches_.configmaps.Size());
  module_controller_ = std::make_unique<kube::Controller>(
      "module", module_queue_, module_reconciler_, &controller_metrics_, options_.workers);
  node_controller_ = std::make_unique<kube::Controller>("node-kernel-label", node_queue_,
                                                        node_reconciler_, &controller_metrics_, 2);
  module_controller_->Start();
  node_controller_->Start();
  controllers_started_.store(true, std::memory_order_release);
  return true;
}

void Manager::Stop() {
  if (module_controller_) module_controller_->Stop();
  if (node_controller_) node_controller_->Stop();
  stop_caches_.Cancel();
  for (std::thread& thread : informer_threads_) {
    if (thread.joinable()) thread.join();
  }
  informer_threads_.clear();
}

}  // namespace kmm::controllers
