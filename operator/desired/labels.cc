#include "operator/desired/labels.h"

#include <cctype>
#include <cstdint>

#include "fmt/format.h"

namespace kmm::desired {

std::string ModuleReadyLabel(std::string_view ns, std::string_view name) {
  return fmt::format("kmm.node.kubernetes.io/{}.{}.ready", ns, name);
}

std::string DevicePluginReadyLabel(std::string_view ns, std::string_view name) {
  return fmt::format("kmm.node.kubernetes.io/{}.{}.device-plugin-ready", ns, name);
}

std::string ModuleUpdatingLabel(std::string_view ns, std::string_view name) {
  return fmt::format("kmm.sigs.x-k8s.io/{}.{}.updating", ns, name);
}

std::string ModuleVersionLabel(std::string_view ns, std::string_view name) {
  return fmt::format("kmm.node.kubernetes.io/version-module.{}.{}", ns, name);
}

std::string LoaderVersionLabel(std::string_view ns, std::string_view name) {
  return fmt::format("beta.kmm.node.kubernetes.io/version-module-loader.{}.{}", ns, name);
}

std::string InputsHash(std::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return fmt::format("{:016x}", hash);
}

std::string ShortHash(std::string_view text) { return InputsHash(text).substr(0, 10); }

std::string KernelLabelValue(std::string_view kernel) {
  // As the kernel mappings see it (api::NodeKernelVersion): COS reports "5.10.109+".
  if (!kernel.empty() && kernel.back() == '+') kernel.remove_suffix(1);
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  std::string value;
  for (char c : kernel) value += (alnum(c) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (value == kernel && value.size() <= 63 && !value.empty() && alnum(value.front()) &&
      alnum(value.back())) {
    return value;
  }
  // Cut, trimmed to alphanumeric ends, plus a hash of the original: two kernels that differ
  // only in replaced or cut characters still get different values.
  std::string head = value.substr(0, 52);
  while (!head.empty() && !alnum(head.back())) head.pop_back();
  while (!head.empty() && !alnum(head.front())) head.erase(0, 1);
  return head.empty() ? ShortHash(kernel) : fmt::format("{}-{}", head, ShortHash(kernel));
}

}  // namespace kmm::desired
