// fakecri serves the Kubernetes CRI fake runtime (k8s.io/cri-client/pkg/fake) on a unix
// socket, so a real kubelet can run on a machine without a container engine. Pods "run"
// instantly; nothing is executed. Stops cleanly on SIGTERM or SIGINT.
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	fakeremote "k8s.io/cri-client/pkg/fake"
)

func main() {
	endpoint := flag.String("listen", "unix:///run/kmm-fakecri.sock", "CRI endpoint to serve")
	flag.Parse()

	runtime := fakeremote.NewFakeRemoteRuntime()
	if err := runtime.Start(*endpoint); err != nil {
		log.Fatalf("fakecri: cannot serve %s: %v", *endpoint, err)
	}
	log.Printf("fakecri: serving the fake CRI runtime on %s", *endpoint)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	runtime.Stop()
}
