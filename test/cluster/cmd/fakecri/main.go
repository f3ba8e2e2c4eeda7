// fakecri serves the Kubernetes CRI fake runtime (k8s.io/cri-client/pkg/fake) on a unix
// socket, so a real kubelet can run on a machine without a container engine: pods "run"
// at once and nothing is executed. Every CreateContainer request is also written as one
// JSON line to --record, so tests can see what the kubelet passed to the runtime (device
// nodes from device plugins, mounts, environment). Stops cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	fakeremote "k8s.io/cri-client/pkg/fake"
)

// recordingRuntime is the fake runtime with CreateContainer requests written down.
type recordingRuntime struct {
	*fakeremote.RemoteRuntime
	mu     sync.Mutex
	record *json.Encoder
}

type createdContainer struct {
	Pod       string                  `json:"pod"`
	Namespace string                  `json:"namespace"`
	Container string                  `json:"container"`
	Devices   []*runtimeapi.Device    `json:"devices"`
	Envs      []*runtimeapi.KeyValue  `json:"envs"`
	Mounts    []*runtimeapi.Mount     `json:"mounts"`
	CDI       []*runtimeapi.CDIDevice `json:"cdiDevices"`
}

func (r *recordingRuntime) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if r.record != nil {
		r.mu.Lock()
		_ = r.record.Encode(createdContainer{
			Pod:       req.GetSandboxConfig().GetMetadata().GetName(),
			Namespace: req.GetSandboxConfig().GetMetadata().GetNamespace(),
			Container: req.GetConfig().GetMetadata().GetName(),
			Devices:   req.GetConfig().GetDevices(),
			Envs:      req.GetConfig().GetEnvs(),
			Mounts:    req.GetConfig().GetMounts(),
			CDI:       req.GetConfig().GetCDIDevices(),
		})
		r.mu.Unlock()
	}
	return r.RemoteRuntime.CreateContainer(ctx, req)
}

func main() {
	endpoint := flag.String("listen", "unix:///run/kmm-fakecri.sock", "CRI endpoint to serve")
	recordPath := flag.String("record", "", "file to append CreateContainer requests to (JSON lines)")
	flag.Parse()

	fake := fakeremote.NewFakeRemoteRuntime()
	// The kubelet refuses images without an ID and a size; every pulled image gets both.
	fake.ImageService.SetFakeImageSize(1)
	// What the fake's own Start would do: report the runtime and its network ready.
	fake.RuntimeService.FakeStatus = &runtimeapi.RuntimeStatus{
		Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		},
	}
	runtime := &recordingRuntime{RemoteRuntime: fake}
	if *recordPath != "" {
		file, err := os.OpenFile(*recordPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatalf("fakecri: %v", err)
		}
		defer file.Close()
		runtime.record = json.NewEncoder(file)
	}

	path := strings.TrimPrefix(*endpoint, "unix://")
	_ = os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		log.Fatalf("fakecri: cannot listen on %s: %v", path, err)
	}
	server := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(server, runtime)
	runtimeapi.RegisterImageServiceServer(server, fake)
	go func() {
		if err := server.Serve(listener); err != nil {
			log.Printf("fakecri: %v", err)
		}
	}()
	log.Printf("fakecri: serving the fake CRI runtime on %s", *endpoint)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	server.Stop()
}
