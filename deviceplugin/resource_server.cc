#include "deviceplugin/resource_server.h"

#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "common/status.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace kmm::deviceplugin {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

// One ListAndWatch stream. At most one write is in flight; an update that arrives during a
// write replaces any update still waiting, so a slow kubelet gets the latest list next.
// gRPC may run a reaction (OnWriteDone, OnDone) inline on the thread that starts an
// operation, so the lock is recursive and no server lock is held while calling in here;
// the server keeps a shared_ptr so the object outlives OnDone while someone still uses it.
class ResourceServer::Watcher final
    : public grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse> {
 public:
  explicit Watcher(ResourceServer* server) : server_(server) {}

  void Push(std::shared_ptr<const v1beta1::ListAndWatchResponse> list) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (finished_) return;
    if (writing_) {
      pending_ = std::move(list);
    } else {
      Write(std::move(list));
    }
  }

  void End() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    FinishOnce(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream closed"));
    } else if (pending_) {
      Write(std::move(pending_));
    }
  }

  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    FinishOnce(grpc::Status::CANCELLED);
  }

  void OnDone() override { server_->Forget(this); }

 private:
  void Write(std::shared_ptr<const v1beta1::ListAndWatchResponse> list) {
    if (finished_) return;
    in_flight_ = std::move(list);  // kept alive until the write completes
    writing_ = true;
    StartWrite(in_flight_.get());
  }
  void FinishOnce(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  ResourceServer* const server_;
  std::recursive_mutex mu_;
  bool writing_ = false;
  bool finished_ = false;
  std::shared_ptr<const v1beta1::ListAndWatchResponse> in_flight_;
  std::shared_ptr<const v1beta1::ListAndWatchResponse> pending_;
};

ResourceServer::ResourceServer(ResourceConfig resource, std::string socket_path)
    : resource_(std::move(resource)),
      socket_path_(std::move(socket_path)),
      advertised_(std::make_shared<Advertised>()),
      list_(std::make_shared<v1beta1::ListAndWatchResponse>()) {}

ResourceServer::~ResourceServer() { Stop(); }

v1beta1::DevicePluginOptions ResourceServer::Options() {
  v1beta1::DevicePluginOptions options;
  options.set_pre_start_required(false);
  options.set_get_preferred_allocation_available(true);
  return options;
}

absl::Status ResourceServer::Start() {
  std::error_code ignored;
  std::filesystem::remove(socket_path_, ignored);  // a stale socket of ours
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket_path_, grpc::InsecureServerCredentials());
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (!server_) {
    return absl::UnavailableError(fmt::format("cannot serve the device plugin for {} on {}",
                                              resource_.resource_name, socket_path_));
  }
  spdlog::info("serving {} on {}", resource_.resource_name, socket_path_);
  return absl::OkStatus();
}

std::vector<std::shared_ptr<ResourceServer::Watcher>> ResourceServer::Watchers() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Watcher>> watchers;
  for (const auto& [raw, watcher] : watchers_) watchers.push_back(watcher);
  return watchers;
}

void ResourceServer::Stop() {
  if (!server_) return;
  for (const auto& watcher : Watchers()) watcher->End();
  server_->Shutdown();
  server_->Wait();
  server_.reset();
  std::error_code ignored;
  std::filesystem::remove(socket_path_, ignored);
}

void ResourceServer::Update(Advertised advertised) {
  auto shared = std::make_shared<const Advertised>(std::move(advertised));
  auto list = std::make_shared<const v1beta1::ListAndWatchResponse>(ToListAndWatch(*shared));
  {
    absl::MutexLock lock(&mu_);
    advertised_ = std::move(shared);
    list_ = list;
  }
  for (const auto& watcher : Watchers()) watcher->Push(list);
}

std::shared_ptr<const Advertised> ResourceServer::Current() const {
  absl::MutexLock lock(&mu_);
  return advertised_;
}

void ResourceServer::Forget(Watcher* watcher) {
  std::shared_ptr<Watcher> last;  // released after the lock: it may be the last owner
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(watcher);
  if (it == watchers_.end()) return;
  last = std::move(it->second);
  watchers_.erase(it);
}

grpc::ServerUnaryReactor* ResourceServer::GetDevicePluginOptions(
    grpc::CallbackServerContext* context, const v1beta1::Empty* /*request*/,
    v1beta1::DevicePluginOptions* response) {
  *response = Options();
  return Done(context, grpc::Status::OK);
}

grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse>* ResourceServer::ListAndWatch(
    grpc::CallbackServerContext* /*context*/, const v1beta1::Empty* /*request*/) {
  auto watcher = std::make_shared<Watcher>(this);
  std::shared_ptr<const v1beta1::ListAndWatchResponse> first;
  {
    absl::MutexLock lock(&mu_);
    watchers_.emplace(watcher.get(), watcher);
    first = list_;
  }
  watcher->Push(std::move(first));  // the full list at once
  return watcher.get();
}

grpc::ServerUnaryReactor* ResourceServer::GetPreferredAllocation(
    grpc::CallbackServerContext* context, const v1beta1::PreferredAllocationRequest* request,
    v1beta1::PreferredAllocationResponse* response) {
  const std::shared_ptr<const Advertised> advertised = Current();
  for (const auto& container : request->container_requests()) {
    const std::vector<std::string> available(container.available_deviceids().begin(),
                                             container.available_deviceids().end());
    const std::vector<std::string> must(container.must_include_deviceids().begin(),
                                        container.must_include_deviceids().end());
    auto* out = response->add_container_responses();
    for (const std::string& id :
         PreferredAllocation(*advertised, available, must, container.allocation_size())) {
      out->add_deviceids(id);
    }
  }
  return Done(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ResourceServer::Allocate(grpc::CallbackServerContext* context,
                                                   const v1beta1::AllocateRequest* request,
                                                   v1beta1::AllocateResponse* response) {
  const std::shared_ptr<const Advertised> advertised = Current();
  for (const auto& container : request->container_requests()) {
    const std::vector<std::string> ids(container.devices_ids().begin(),
                                       container.devices_ids().end());
    absl::StatusOr<v1beta1::ContainerAllocateResponse> allocated =
        AllocateContainer(resource_, *advertised, ids);
    if (!allocated.ok()) {
      spdlog::warn("Allocate refused: {}", allocated.status().message());
      return Done(context, ToGrpc(allocated.status()));
    }
    *response->add_container_responses() = std::move(*allocated);
  }
  return Done(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ResourceServer::PreStartContainer(
    grpc::CallbackServerContext* context, const v1beta1::PreStartContainerRequest* /*request*/,
    v1beta1::PreStartContainerResponse* /*response*/) {
  return Done(context, grpc::Status::OK);  // pre_start_required is false
}

absl::Status RegisterWithKubelet(const std::string& kubelet_socket, const std::string& endpoint,
                                 const std::string& resource_name) {
  auto channel =
      grpc::CreateChannel("unix://" + kubelet_socket, grpc::InsecureChannelCredentials());
  auto stub = v1beta1::Registration::NewStub(channel);
  v1beta1::RegisterRequest request;
  request.set_version("v1beta1");
  request.set_endpoint(endpoint);
  request.set_resource_name(resource_name);
  *request.mutable_options() = ResourceServer::Options();
  v1beta1::Empty reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  const grpc::Status status = stub->Register(&context, request, &reply);
  if (!status.ok()) {
    return absl::UnavailableError(fmt::format("register {} with the kubelet at {}: {}",
                                              resource_name, kubelet_socket,
                                              status.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace kmm::deviceplugin
