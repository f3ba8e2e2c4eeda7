// kmm-test-kubelet: the kubelet's side of the device plugin API, for the qemu node where
// no real kubelet runs. Serves Registration on <dir>/kubelet.sock, dials each registering
// plugin back like the kubelet, follows its ListAndWatch stream and prints one line per
// event for the e2e test to parse:
//   KUBELET-REGISTERED <resource> <endpoint>
//   KUBELET-LIST <id>:<health>,...
//   KUBELET-ALLOCATE <host path>,...   (with --allocate ID, after the first list)
//   KUBELET-STREAM-END
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "CLI/CLI.hpp"
#include "deviceplugin/testing_kubelet.h"

int main(int argc, char** argv) {
  CLI::App app{"kmm-test-kubelet: a kubelet stand-in for device plugin tests"};
  std::string dir;
  std::string allocate;
  app.add_option("--dir", dir, "Device plugin directory")->required();
  app.add_option("--allocate", allocate, "A device ID to allocate after the first list");
  CLI11_PARSE(app, argc, argv);

  kmm::deviceplugin::testing::FakeKubelet kubelet(dir);
  if (!kubelet.Start()) {
    std::fprintf(stderr, "kmm-test-kubelet: cannot serve %s/kubelet.sock\n", dir.c_str());
    return EXIT_FAILURE;
  }
  if (!kubelet.WaitForRegistrations(1, absl::Minutes(5))) return EXIT_FAILURE;
  const v1beta1::RegisterRequest request = kubelet.requests()[0];
  std::printf("KUBELET-REGISTERED %s %s\n", request.resource_name().c_str(),
              request.endpoint().c_str());
  std::fflush(stdout);

  auto stub = v1beta1::DevicePlugin::NewStub(grpc::CreateChannel(
      "unix://" + dir + "/" + request.endpoint(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto reader = stub->ListAndWatch(&context, v1beta1::Empty());
  v1beta1::ListAndWatchResponse list;
  bool first = true;
  while (reader->Read(&list)) {
    std::printf("KUBELET-LIST %s\n", kmm::deviceplugin::testing::Describe(list).c_str());
    std::fflush(stdout);
    if (first && !allocate.empty()) {
      v1beta1::AllocateRequest allocate_request;
      allocate_request.add_container_requests()->add_devices_ids(allocate);
      v1beta1::AllocateResponse response;
      grpc::ClientContext allocate_context;
      const grpc::Status status = stub->Allocate(&allocate_context, allocate_request, &response);
      std::string nodes;
      for (const auto& device : response.container_responses(0).devices()) {
        nodes += (nodes.empty() ? "" : ",") + device.host_path();
      }
      std::printf("KUBELET-ALLOCATE %s\n",
                  status.ok() ? nodes.c_str() : status.error_message().c_str());
      std::fflush(stdout);
    }
    first = false;
  }
  reader->Finish();
  std::printf("KUBELET-STREAM-END\n");
  std::fflush(stdout);
  kubelet.Stop();
  return EXIT_SUCCESS;
}
