// The kubelet-facing gRPC server for one extended resource: serves the DevicePlugin
// service on its own unix socket with the callback API (one write in flight per
// ListAndWatch stream, always the latest device list). Thread-safe: Update() may be called
// from the event thread while gRPC threads serve calls.
#ifndef KMM_DEVICEPLUGIN_RESOURCE_SERVER_H_
#define KMM_DEVICEPLUGIN_RESOURCE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "deviceplugin/allocation.h"
#include "deviceplugin/config.h"
#include "deviceplugin/v1beta1/api.grpc.pb.h"

namespace kmm::deviceplugin {

class ResourceServer final : public v1beta1::DevicePlugin::CallbackService {
 public:
  ResourceServer(ResourceConfig resource, std::string socket_path);
  ~ResourceServer() override;

  // Removes a stale socket at the path, then serves on it.
  absl::Status Start();
  // Ends every ListAndWatch stream, stops serving and removes the socket.
  void Stop();

  // Publishes a new device set to every ListAndWatch stream (and later Allocate calls).
  void Update(Advertised advertised);

  const ResourceConfig& resource() const { return resource_; }
  const std::string& socket_path() const { return socket_path_; }
  // The options registered with the kubelet; GetDevicePluginOptions returns the same.
  static v1beta1::DevicePluginOptions Options();

  grpc::ServerUnaryReactor* GetDevicePluginOptions(grpc::CallbackServerContext* context,
                                                   const v1beta1::Empty* request,
                                                   v1beta1::DevicePluginOptions* response) override;
  grpc::ServerWriteReactor<v1beta1::ListAndWatchResponse>* ListAndWatch(
      grpc::CallbackServerContext* context, const v1beta1::Empty* request) override;
  grpc::ServerUnaryReactor* GetPreferredAllocation(
      grpc::CallbackServerContext* context, const v1beta1::PreferredAllocationRequest* request,
      v1beta1::PreferredAllocationResponse* response) override;
  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* context,
                                     const v1beta1::AllocateRequest* request,
                                     v1beta1::AllocateResponse* response) override;
  grpc::ServerUnaryReactor* PreStartContainer(
      grpc::CallbackServerContext* context, const v1beta1::PreStartContainerRequest* request,
      v1beta1::PreStartContainerResponse* response) override;

 private:
  class Watcher;
  void Forget(Watcher* watcher);
  std::vector<std::shared_ptr<Watcher>> Watchers() const;
  std::shared_ptr<const Advertised> Current() const;

  const ResourceConfig resource_;
  const std::string socket_path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Advertised> advertised_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const v1beta1::ListAndWatchResponse> list_ ABSL_GUARDED_BY(mu_);
  std::map<Watcher*, std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> server_;
};

// Calls Registration.Register on the kubelet's socket; the kubelet dials the plugin back
// during the call, so the plugin must already be serving.
absl::Status RegisterWithKubelet(const std::string& kubelet_socket, const std::string& endpoint,
                                 const std::string& resource_name);

}  // namespace kmm::deviceplugin

#endif  // KMM_DEVICEPLUGIN_RESOURCE_SERVER_H_
