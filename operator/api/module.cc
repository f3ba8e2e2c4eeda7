#include "operator/api/module.h"

#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"

namespace kmm::api {
namespace {

using nlohmann::json;

// Collects every decoding problem so one pass reports them all.
class Problems {
 public:
  void Add(const absl::Status& status) {
    if (!status.ok()) messages_.emplace_back(FromAbsl(status.message()));
  }
  void Add(std::string message) { messages_.push_back(std::move(message)); }
  bool empty() const { return messages_.empty(); }
  absl::Status ToStatus() const {
    if (messages_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(fmt::format("{}", fmt::join(messages_, "; ")));
  }

 private:
  std::vector<std::string> messages_;
};

// JsonFields over an object known to be an object, recording problems instead of stopping at
// the first one.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, Problems& problems)
      : object_(object), fields_(object, std::move(path)), problems_(problems) {}

  template <typename T>
  void Optional(std::string_view key, T* out) {
    problems_.Add(fields_.Optional(key, out));
  }

  void Required(std::string_view key, std::string* out) {
    problems_.Add(fields_.Required(key, out));
  }

  // A list whose absence differs from an empty list.
  void OptionalList(std::string_view key, std::optional<std::vector<std::string>>* out) {
    std::vector<std::string> list;
    const absl::Status status = fields_.Optional(key, &list);
    problems_.Add(status);
    if (status.ok() && Has(key)) *out = std::move(list);
  }

  void OptionalInt64(std::string_view key, std::optional<int64_t>* out) {
    int64_t value = 0;
    const absl::Status status = fields_.Optional(key, &value);
    problems_.Add(status);
    if (status.ok() && Has(key)) *out = value;
  }

  void OptionalInt32(std::string_view key, int32_t* out) {
    int64_t value = *out;
    const absl::Status status = fields_.Optional(key, &value);
    problems_.Add(status);
    if (!status.ok()) return;
    if (value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      problems_.Add(fmt::format("{}: {} does not fit in a 32-bit integer", PathOf(key), value));
      return;
    }
    *out = static_cast<int32_t>(value);
  }

  void OptionalBool(std::string_view key, std::optional<bool>* out) {
    bool value = false;
    const absl::Status status = fields_.Optional(key, &value);
    problems_.Add(status);
    if (status.ok() && Has(key)) *out = value;
  }

  // The nested object at `key`, or nullptr when it is absent (an error if `required`) or not
  // an object (always an error).
  const json* Object(std::string_view key, bool required = false) {
    const json* value = nullptr;
    const absl::Status status = fields_.OptionalObject(key, &value);
    problems_.Add(status);
    if (!status.ok()) return nullptr;
    if (value == nullptr && required) MissingRequired(key);
    return value;
  }

  // Calls `parse(item, path)` for each object of the array at `key`; items that are not
  // objects are errors.
  template <typename F>
  void ForEachObject(std::string_view key, F parse) {
    const json* array = nullptr;
    const absl::Status status = fields_.OptionalArray(key, &array);
    problems_.Add(status);
    if (!status.ok() || array == nullptr) return;
    for (size_t i = 0; i < array->size(); ++i) {
      const json& item = (*array)[i];
      std::string path = fmt::format("{}[{}]", PathOf(key), i);
      if (!item.is_object()) {
        problems_.Add(fmt::format("{}: expected an object, got {} ({})", path, JsonTypeName(item),
                                  item.dump()));
        continue;
      }
      parse(item, std::move(path));
    }
  }

  // Kubernetes objects we pass through: each must be an object, and where Kubernetes
  // requires them, the named string fields must be present.
  void PassThroughObjects(std::string_view key, std::vector<json>* out,
                          std::initializer_list<std::string_view> required_strings = {}) {
    ForEachObject(key, [&](const json& item, const std::string& path) {
      for (std::string_view field : required_strings) {
        auto it = item.find(field);
        if (it == item.end() || it->is_null()) {
          problems_.Add(fmt::format("{}.{}: required field is missing", path, field));
        } else if (!it->is_string()) {
          problems_.Add(fmt::format("{}.{}: expected a string, got {} ({})", path, field,
                                    JsonTypeName(*it), it->dump()));
        }
      }
      out->push_back(item);
    });
  }

  void MissingRequired(std::string_view key, std::string_view hint = "") {
    problems_.Add(fmt::format("{}: required field is missing{}", PathOf(key), hint));
  }

  bool Has(std::string_view key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }

  std::string PathOf(std::string_view key) const { return fields_.PathOf(key); }
  Problems& problems() { return problems_; }
  void RejectUnknownFields() { problems_.Add(fields_.NoUnknownFields()); }

 private:
  const json& object_;
  JsonFields fields_;
  Problems& problems_;
};

// --- decoding ---------------------------------------------------------------------------

LocalObjectReference ParseLocalObjectReference(const json& object, std::string path,
                                               Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  LocalObjectReference reference;
  reader.Optional("name", &reference.name);
  reader.RejectUnknownFields();
  return reference;
}

std::optional<LocalObjectReference> OptionalReference(ObjectReader& parent, std::string_view key,
                                                      bool required = false) {
  const json* object = parent.Object(key, required);
  if (object == nullptr) return std::nullopt;
  return ParseLocalObjectReference(*object, parent.PathOf(key), parent.problems());
}

std::optional<TLSOptions> OptionalTLS(ObjectReader& parent, std::string_view key) {
  const json* object = parent.Object(key);
  if (object == nullptr) return std::nullopt;
  ObjectReader reader(*object, parent.PathOf(key), parent.problems());
  TLSOptions tls;
  reader.Optional("insecure", &tls.insecure);
  reader.Optional("insecureSkipTLSVerify", &tls.insecure_skip_tls_verify);
  reader.RejectUnknownFields();
  return tls;
}

std::optional<Build> OptionalBuild(ObjectReader& parent, std::string_view key) {
  const json* object = parent.Object(key);
  if (object == nullptr) return std::nullopt;
  ObjectReader reader(*object, parent.PathOf(key), parent.problems());
  Build build;
  reader.ForEachObject("buildArgs", [&](const json& item, std::string path) {
    ObjectReader arg_reader(item, std::move(path), parent.problems());
    BuildArg arg;
    arg_reader.Required("name", &arg.name);
    arg_reader.Required("value", &arg.value);
    arg_reader.RejectUnknownFields();
    build.build_args.push_back(std::move(arg));
  });
  if (auto reference = OptionalReference(reader, "dockerfileConfigMap", /*required=*/true)) {
    build.dockerfile_config_map = std::move(*reference);
  }
  build.base_image_registry_tls = OptionalTLS(reader, "baseImageRegistryTLS");
  reader.ForEachObject("secrets", [&](const json& item, std::string path) {
    build.secrets.push_back(ParseLocalObjectReference(item, std::move(path), parent.problems()));
  });
  if (const json* kaniko = reader.Object("kanikoParams")) {
    ObjectReader kaniko_reader(*kaniko, reader.PathOf("kanikoParams"), parent.problems());
    KanikoParams params;
    kaniko_reader.Optional("tag", &params.tag);
    kaniko_reader.RejectUnknownFields();
    build.kaniko_params = std::move(params);
  }
  reader.Optional("selector", &build.selector);
  reader.RejectUnknownFields();
  return build;
}

std::optional<Sign> OptionalSign(ObjectReader& parent, std::string_view key) {
  const json* object = parent.Object(key);
  if (object == nullptr) return std::nullopt;
  ObjectReader reader(*object, parent.PathOf(key), parent.problems());
  Sign sign;
  reader.Optional("unsignedImage", &sign.unsigned_image);
  sign.unsigned_image_registry_tls = OptionalTLS(reader, "unsignedImageRegistryTLS");
  if (auto reference = OptionalReference(reader, "keySecret", /*required=*/true)) {
    sign.key_secret = std::move(*reference);
  }
  if (auto reference = OptionalReference(reader, "certSecret", /*required=*/true)) {
    sign.cert_secret = std::move(*reference);
  }
  reader.Optional("filesToSign", &sign.files_to_sign);
  reader.RejectUnknownFields();
  return sign;
}

std::optional<ModprobeArgs> OptionalModprobeArgs(ObjectReader& parent, std::string_view key) {
  const json* object = parent.Object(key);
  if (object == nullptr) return std::nullopt;
  ObjectReader reader(*object, parent.PathOf(key), parent.problems());
  ModprobeArgs args;
  reader.Optional("load", &args.load);
  reader.Optional("unload", &args.unload);
  reader.RejectUnknownFields();
  return args;
}

ModprobeSpec ParseModprobe(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  ModprobeSpec modprobe;
  reader.Optional("moduleName", &modprobe.module_name);
  reader.Optional("parameters", &modprobe.parameters);
  reader.Optional("dirName", &modprobe.dir_name);
  if (modprobe.dir_name.empty()) modprobe.dir_name = std::string(kDefaultDirName);
  modprobe.args = OptionalModprobeArgs(reader, "args");
  modprobe.raw_args = OptionalModprobeArgs(reader, "rawArgs");
  reader.Optional("firmwarePath", &modprobe.firmware_path);
  reader.OptionalList("modulesLoadingOrder", &modprobe.modules_loading_order);
  reader.RejectUnknownFields();
  return modprobe;
}

KernelMapping ParseKernelMapping(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  KernelMapping mapping;
  reader.Optional("literal", &mapping.literal);
  reader.Optional("regexp", &mapping.regexp);
  reader.Optional("containerImage", &mapping.container_image);
  mapping.build = OptionalBuild(reader, "build");
  mapping.sign = OptionalSign(reader, "sign");
  mapping.registry_tls = OptionalTLS(reader, "registryTLS");
  reader.OptionalList("inTreeModulesToRemove", &mapping.in_tree_modules_to_remove);
  reader.Optional("inTreeModuleToRemove", &mapping.in_tree_module_to_remove);
  reader.RejectUnknownFields();
  return mapping;
}

ModuleLoaderSpec ParseModuleLoader(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  ModuleLoaderSpec loader;
  reader.Optional("serviceAccountName", &loader.service_account_name);
  if (const json* container_json = reader.Object("container", /*required=*/true)) {
    ObjectReader container_reader(*container_json, reader.PathOf("container"), problems);
    ModuleLoaderContainerSpec& container = loader.container;
    if (const json* modprobe = container_reader.Object("modprobe", /*required=*/true)) {
      container.modprobe = ParseModprobe(*modprobe, container_reader.PathOf("modprobe"), problems);
    }
    if (!container_reader.Has("kernelMappings")) {
      container_reader.MissingRequired("kernelMappings");
    }
    container_reader.ForEachObject("kernelMappings", [&](const json& item, std::string item_path) {
      container.kernel_mappings.push_back(ParseKernelMapping(item, std::move(item_path), problems));
    });
    container_reader.Optional("containerImage", &container.container_image);
    container_reader.Optional("imagePullPolicy", &container.image_pull_policy);
    container_reader.Optional("version", &container.version);
    container.build = OptionalBuild(container_reader, "build");
    container.sign = OptionalSign(container_reader, "sign");
    container.registry_tls = OptionalTLS(container_reader, "registryTLS");
    container_reader.OptionalList("inTreeModulesToRemove", &container.in_tree_modules_to_remove);
    container_reader.Optional("inTreeModuleToRemove", &container.in_tree_module_to_remove);
    container_reader.RejectUnknownFields();
  }
  reader.RejectUnknownFields();
  return loader;
}

ContainerSpec ParseContainer(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  ContainerSpec container;
  reader.Required("image", &container.image);
  reader.Optional("imagePullPolicy", &container.image_pull_policy);
  reader.Optional("command", &container.command);
  reader.Optional("args", &container.args);
  reader.PassThroughObjects("env", &container.env, {"name"});
  if (const json* resources = reader.Object("resources")) container.resources = *resources;
  reader.PassThroughObjects("volumeMounts", &container.volume_mounts, {"name", "mountPath"});
  reader.RejectUnknownFields();
  return container;
}

std::optional<ContainerSpec> OptionalContainer(ObjectReader& parent, std::string_view key,
                                               bool required = false) {
  const json* object = parent.Object(key, required);
  if (object == nullptr) return std::nullopt;
  return ParseContainer(*object, parent.PathOf(key), parent.problems());
}

DevicePluginSpec ParseDevicePlugin(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  DevicePluginSpec plugin;
  if (const json* builtin = reader.Object("builtin")) plugin.builtin = *builtin;
  plugin.container = OptionalContainer(reader, "container");
  if (!reader.Has("container") && !reader.Has("builtin")) {
    reader.MissingRequired("container",
                           " (or set builtin to use kmm's built-in device plugin instead)");
  }
  plugin.init_container = OptionalContainer(reader, "initContainer");
  reader.Optional("serviceAccountName", &plugin.service_account_name);
  reader.PassThroughObjects("volumes", &plugin.volumes, {"name"});
  reader.OptionalBool("automountServiceAccountToken", &plugin.automount_service_account_token);
  reader.RejectUnknownFields();
  return plugin;
}

DraSpec ParseDra(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  DraSpec dra;
  if (auto container = OptionalContainer(reader, "container", /*required=*/true)) {
    dra.container = std::move(*container);
  }
  dra.init_container = OptionalContainer(reader, "initContainer");
  reader.Optional("serviceAccountName", &dra.service_account_name);
  reader.PassThroughObjects("volumes", &dra.volumes, {"name"});
  reader.OptionalBool("automountServiceAccountToken", &dra.automount_service_account_token);
  reader.Required("driverName", &dra.driver_name);
  reader.ForEachObject("deviceClasses", [&](const json& item, std::string item_path) {
    ObjectReader class_reader(item, std::move(item_path), problems);
    DeviceClassSpec device_class;
    class_reader.Required("name", &device_class.name);
    class_reader.PassThroughObjects("selectors", &device_class.selectors);
    class_reader.PassThroughObjects("config", &device_class.config);
    class_reader.RejectUnknownFields();
    dra.device_classes.push_back(std::move(device_class));
  });
  reader.RejectUnknownFields();
  return dra;
}

void ParseTolerations(ObjectReader& spec_reader, std::vector<json>* out) {
  spec_reader.ForEachObject("tolerations", [&](const json& item, std::string path) {
    // Shape-checked field by field (ValidateModule reads them), kept as JSON.
    ObjectReader reader(item, std::move(path), spec_reader.problems());
    std::string text;
    int64_t seconds = 0;
    reader.Optional("key", &text);
    reader.Optional("operator", &text);
    reader.Optional("value", &text);
    reader.Optional("effect", &text);
    reader.Optional("tolerationSeconds", &seconds);
    reader.RejectUnknownFields();
    out->push_back(item);
  });
}

ModuleSpec ParseSpec(const json& object, std::string path, Problems& problems) {
  ObjectReader reader(object, std::move(path), problems);
  ModuleSpec spec;
  if (const json* loader = reader.Object("moduleLoader")) {
    spec.module_loader = ParseModuleLoader(*loader, reader.PathOf("moduleLoader"), problems);
  }
  if (const json* plugin = reader.Object("devicePlugin")) {
    spec.device_plugin = ParseDevicePlugin(*plugin, reader.PathOf("devicePlugin"), problems);
  }
  if (const json* dra = reader.Object("dra")) {
    spec.dra = ParseDra(*dra, reader.PathOf("dra"), problems);
  }
  spec.image_repo_secret = OptionalReference(reader, "imageRepoSecret");
  if (!reader.Has("selector")) {
    reader.MissingRequired("selector", " (use {} to select every node)");
  }
  reader.Optional("selector", &spec.selector);
  ParseTolerations(reader, &spec.tolerations);
  reader.OptionalInt64("imageRebuildTriggerGeneration", &spec.image_rebuild_trigger_generation);
  reader.RejectUnknownFields();
  return spec;
}

ObjectMeta ParseMetadata(const json& object, std::string path, Problems& problems) {
  // Lenient on purpose: the API server adds fields (managedFields, creationTimestamp, ...)
  // that we keep verbatim rather than reject.
  static constexpr std::string_view kKnown[] = {
      "name",       "namespace", "uid",        "resourceVersion", "generation", "deletionTimestamp",
      "finalizers", "labels",    "annotations"};
  ObjectReader reader(object, std::move(path), problems);
  ObjectMeta metadata;
  reader.Optional("name", &metadata.name);
  reader.Optional("namespace", &metadata.namespace_name);
  reader.Optional("uid", &metadata.uid);
  reader.Optional("resourceVersion", &metadata.resource_version);
  reader.Optional("generation", &metadata.generation);
  reader.Optional("deletionTimestamp", &metadata.deletion_timestamp);
  reader.Optional("finalizers", &metadata.finalizers);
  reader.Optional("labels", &metadata.labels);
  reader.Optional("annotations", &metadata.annotations);
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (std::string_view name : kKnown) known = known || key == name;
    if (!known) metadata.other[key] = value;
  }
  return metadata;
}

DaemonSetStatus ParseDaemonSetStatus(ObjectReader& parent, std::string_view key) {
  DaemonSetStatus status;
  const json* object = parent.Object(key);
  if (object == nullptr) return status;
  ObjectReader reader(*object, parent.PathOf(key), parent.problems());
  reader.OptionalInt32("nodesMatchingSelectorNumber", &status.nodes_matching_selector_number);
  reader.OptionalInt32("desiredNumber", &status.desired_number);
  reader.OptionalInt32("availableNumber", &status.available_number);
  reader.RejectUnknownFields();
  return status;
}

ModuleStatus ParseStatus(const json& object, std::string path, Problems& problems) {
  static constexpr std::string_view kKnown[] = {"moduleLoader", "devicePlugin", "dra",
                                                "imageRebuildTriggerGeneration"};
  ObjectReader reader(object, std::move(path), problems);
  ModuleStatus status;
  status.module_loader = ParseDaemonSetStatus(reader, "moduleLoader");
  status.device_plugin = ParseDaemonSetStatus(reader, "devicePlugin");
  status.dra = ParseDaemonSetStatus(reader, "dra");
  reader.OptionalInt64("imageRebuildTriggerGeneration", &status.image_rebuild_trigger_generation);
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (std::string_view name : kKnown) known = known || key == name;
    if (!known) status.other[key] = value;
  }
  return status;
}

// --- encoding ---------------------------------------------------------------------------

void PutString(json& out, std::string_view key, const std::string& value) {
  if (!value.empty()) out[key] = value;
}

void PutList(json& out, std::string_view key, const std::vector<std::string>& values) {
  if (!values.empty()) out[key] = values;
}

void PutList(json& out, std::string_view key,
             const std::optional<std::vector<std::string>>& values) {
  if (values.has_value()) out[key] = *values;
}

void PutObjects(json& out, std::string_view key, const std::vector<json>& values) {
  if (!values.empty()) out[key] = values;
}

void PutMap(json& out, std::string_view key, const StringMap& values) {
  if (!values.empty()) out[key] = values;
}

json ToJson(const LocalObjectReference& reference) {
  json out = json::object();
  PutString(out, "name", reference.name);
  return out;
}

json ToJson(const ModprobeArgs& args) {
  json out = json::object();
  PutList(out, "load", args.load);
  PutList(out, "unload", args.unload);
  return out;
}

json ToJson(const ModprobeSpec& modprobe) {
  json out = json::object();
  PutString(out, "moduleName", modprobe.module_name);
  PutList(out, "parameters", modprobe.parameters);
  out["dirName"] = modprobe.dir_name;
  if (modprobe.args) out["args"] = ToJson(*modprobe.args);
  if (modprobe.raw_args) out["rawArgs"] = ToJson(*modprobe.raw_args);
  PutString(out, "firmwarePath", modprobe.firmware_path);
  PutList(out, "modulesLoadingOrder", modprobe.modules_loading_order);
  return out;
}

json ToJson(const KernelMapping& mapping) {
  json out = json::object();
  PutString(out, "literal", mapping.literal);
  PutString(out, "regexp", mapping.regexp);
  PutString(out, "containerImage", mapping.container_image);
  if (mapping.build) out["build"] = ToJson(*mapping.build);
  if (mapping.sign) out["sign"] = ToJson(*mapping.sign);
  if (mapping.registry_tls) out["registryTLS"] = ToJson(*mapping.registry_tls);
  PutList(out, "inTreeModulesToRemove", mapping.in_tree_modules_to_remove);
  PutString(out, "inTreeModuleToRemove", mapping.in_tree_module_to_remove);
  return out;
}

json ToJson(const ModuleLoaderSpec& loader) {
  const ModuleLoaderContainerSpec& container = loader.container;
  json container_json = json::object();
  container_json["modprobe"] = ToJson(container.modprobe);
  json mappings = json::array();
  for (const KernelMapping& mapping : container.kernel_mappings)
    mappings.push_back(ToJson(mapping));
  container_json["kernelMappings"] = std::move(mappings);
  PutString(container_json, "containerImage", container.container_image);
  PutString(container_json, "imagePullPolicy", container.image_pull_policy);
  PutString(container_json, "version", container.version);
  if (container.build) container_json["build"] = ToJson(*container.build);
  if (container.sign) container_json["sign"] = ToJson(*container.sign);
  if (container.registry_tls) container_json["registryTLS"] = ToJson(*container.registry_tls);
  PutList(container_json, "inTreeModulesToRemove", container.in_tree_modules_to_remove);
  PutString(container_json, "inTreeModuleToRemove", container.in_tree_module_to_remove);

  json out = json::object();
  out["container"] = std::move(container_json);
  PutString(out, "serviceAccountName", loader.service_account_name);
  return out;
}

json ToJson(const DevicePluginSpec& plugin) {
  json out = json::object();
  if (plugin.container) out["container"] = ToJson(*plugin.container);
  if (plugin.init_container) out["initContainer"] = ToJson(*plugin.init_container);
  PutString(out, "serviceAccountName", plugin.service_account_name);
  PutObjects(out, "volumes", plugin.volumes);
  if (plugin.automount_service_account_token) {
    out["automountServiceAccountToken"] = *plugin.automount_service_account_token;
  }
  if (!plugin.builtin.is_null()) out["builtin"] = plugin.builtin;
  return out;
}

json ToJson(const DraSpec& dra) {
  json out = json::object();
  out["container"] = ToJson(dra.container);
  if (dra.init_container) out["initContainer"] = ToJson(*dra.init_container);
  PutString(out, "serviceAccountName", dra.service_account_name);
  PutObjects(out, "volumes", dra.volumes);
  if (dra.automount_service_account_token) {
    out["automountServiceAccountToken"] = *dra.automount_service_account_token;
  }
  out["driverName"] = dra.driver_name;
  if (!dra.device_classes.empty()) {
    json classes = json::array();
    for (const DeviceClassSpec& device_class : dra.device_classes) {
      json item = json::object();
      item["name"] = device_class.name;
      PutObjects(item, "selectors", device_class.selectors);
      PutObjects(item, "config", device_class.config);
      classes.push_back(std::move(item));
    }
    out["deviceClasses"] = std::move(classes);
  }
  return out;
}

json ToJson(const ModuleSpec& spec) {
  json out = json::object();
  if (spec.module_loader) out["moduleLoader"] = ToJson(*spec.module_loader);
  if (spec.device_plugin) out["devicePlugin"] = ToJson(*spec.device_plugin);
  if (spec.dra) out["dra"] = ToJson(*spec.dra);
  if (spec.image_repo_secret) out["imageRepoSecret"] = ToJson(*spec.image_repo_secret);
  out["selector"] = spec.selector.empty() ? json::object() : json(spec.selector);
  PutObjects(out, "tolerations", spec.tolerations);
  if (spec.image_rebuild_trigger_generation) {
    out["imageRebuildTriggerGeneration"] = *spec.image_rebuild_trigger_generation;
  }
  return out;
}

json ToJson(const ObjectMeta& metadata) {
  json out = metadata.other.is_object() ? metadata.other : json::object();
  PutString(out, "name", metadata.name);
  PutString(out, "namespace", metadata.namespace_name);
  PutString(out, "uid", metadata.uid);
  PutString(out, "resourceVersion", metadata.resource_version);
  if (metadata.generation != 0) out["generation"] = metadata.generation;
  PutString(out, "deletionTimestamp", metadata.deletion_timestamp);
  PutList(out, "finalizers", metadata.finalizers);
  PutMap(out, "labels", metadata.labels);
  PutMap(out, "annotations", metadata.annotations);
  return out;
}

json ToJson(const DaemonSetStatus& status) {
  // int32 with omitempty upstream: zeros are left out.
  json out = json::object();
  if (status.nodes_matching_selector_number != 0) {
    out["nodesMatchingSelectorNumber"] = status.nodes_matching_selector_number;
  }
  if (status.desired_number != 0) out["desiredNumber"] = status.desired_number;
  if (status.available_number != 0) out["availableNumber"] = status.available_number;
  return out;
}

}  // namespace

ObjectMeta ParseModuleMetadata(const json& object) {
  Problems ignored;
  const json* metadata =
      object.is_object() && object.contains("metadata") ? &object["metadata"] : nullptr;
  return metadata != nullptr && metadata->is_object()
             ? ParseMetadata(*metadata, "metadata", ignored)
             : ObjectMeta{};
}

absl::StatusOr<Module> ParseModule(const nlohmann::json& object) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("Module: expected an object, got {}", JsonTypeName(object)));
  }
  Problems problems;
  ObjectReader reader(object, "", problems);
  Module module;

  std::string api_version, kind;
  reader.Optional("apiVersion", &api_version);
  reader.Optional("kind", &kind);
  if (!api_version.empty() && api_version != kApiVersion) {
    problems.Add(fmt::format("apiVersion: is \"{}\", expected \"{}\"", api_version, kApiVersion));
  }
  if (!kind.empty() && kind != kKind) {
    problems.Add(fmt::format("kind: is \"{}\", expected \"{}\"", kind, kKind));
  }
  if (const json* metadata = reader.Object("metadata")) {
    module.metadata = ParseMetadata(*metadata, "metadata", problems);
  }
  if (const json* spec = reader.Object("spec", /*required=*/true)) {
    module.spec = ParseSpec(*spec, "spec", problems);
  }
  if (const json* status = reader.Object("status")) {
    module.status = ParseStatus(*status, "status", problems);
  }
  reader.RejectUnknownFields();

  if (!problems.empty()) {
    const std::string name =
        module.metadata.namespace_name.empty()
            ? module.metadata.name
            : fmt::format("{}/{}", module.metadata.namespace_name, module.metadata.name);
    return Annotate(problems.ToStatus(), name.empty() ? "Module" : fmt::format("Module {}", name));
  }
  return module;
}

nlohmann::json ToJson(const Module& module) {
  json out = json::object();
  out["apiVersion"] = kApiVersion;
  out["kind"] = kKind;
  out["metadata"] = ToJson(module.metadata);
  out["spec"] = ToJson(module.spec);
  if (!(module.status == ModuleStatus{})) out["status"] = ToJson(module.status);
  return out;
}

nlohmann::json ToJson(const ModuleStatus& status) {
  json out = status.other.is_object() ? status.other : json::object();
  out["moduleLoader"] = ToJson(status.module_loader);
  out["devicePlugin"] = ToJson(status.device_plugin);
  out["dra"] = ToJson(status.dra);
  if (status.image_rebuild_trigger_generation) {
    out["imageRebuildTriggerGeneration"] = *status.image_rebuild_trigger_generation;
  }
  return out;
}

nlohmann::json ToJson(const Build& build) {
  json out = json::object();
  if (!build.build_args.empty()) {
    json args = json::array();
    for (const BuildArg& arg : build.build_args) {
      args.push_back({{"name", arg.name}, {"value", arg.value}});
    }
    out["buildArgs"] = std::move(args);
  }
  out["dockerfileConfigMap"] = ToJson(build.dockerfile_config_map);
  if (build.base_image_registry_tls) {
    out["baseImageRegistryTLS"] = ToJson(*build.base_image_registry_tls);
  }
  if (!build.secrets.empty()) {
    json secrets = json::array();
    for (const LocalObjectReference& secret : build.secrets) secrets.push_back(ToJson(secret));
    out["secrets"] = std::move(secrets);
  }
  if (build.kaniko_params) {
    json kaniko = json::object();
    PutString(kaniko, "tag", build.kaniko_params->tag);
    out["kanikoParams"] = std::move(kaniko);
  }
  PutMap(out, "selector", build.selector);
  return out;
}

nlohmann::json ToJson(const Sign& sign) {
  json out = json::object();
  PutString(out, "unsignedImage", sign.unsigned_image);
  if (sign.unsigned_image_registry_tls) {
    out["unsignedImageRegistryTLS"] = ToJson(*sign.unsigned_image_registry_tls);
  }
  out["keySecret"] = ToJson(sign.key_secret);
  out["certSecret"] = ToJson(sign.cert_secret);
  PutList(out, "filesToSign", sign.files_to_sign);
  return out;
}

nlohmann::json ToJson(const TLSOptions& tls) {
  json out = json::object();
  if (tls.insecure) out["insecure"] = true;
  if (tls.insecure_skip_tls_verify) out["insecureSkipTLSVerify"] = true;
  return out;
}

nlohmann::json ToJson(const ContainerSpec& container) {
  json out = json::object();
  out["image"] = container.image;
  PutString(out, "imagePullPolicy", container.image_pull_policy);
  PutList(out, "command", container.command);
  PutList(out, "args", container.args);
  PutObjects(out, "env", container.env);
  if (!container.resources.is_null()) out["resources"] = container.resources;
  PutObjects(out, "volumeMounts", container.volume_mounts);
  return out;
}

}  // namespace kmm::api
