#!/usr/bin/env bash
# Builds the Kubernetes components for the local test cluster from their Go modules into a
# cache outside the repository, keyed by the Kubernetes version and a hash of the pins:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kmm/k8s-<version>-<pins>/bin
# Reuses the cache when every binary is there. Prints the bin directory on its last line.
# Needs only Go (and the Go module proxy the machine is configured with).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 2; }

# One build at a time per machine: ctest starts the integration and node clusters together,
# and both need these binaries.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kmm
mkdir -p "$cache"
exec 9> "$cache/k8s-build.lock"
flock 9

version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
# The cache is keyed by the version and the module pins, nothing else: the Kubernetes
# binaries take many minutes to build and only a pin change makes them differ.
pins=$(cat go.mod go.sum kwok/go.mod kwok/go.sum | sha256sum | cut -c1-12)
bin=${XDG_CACHE_HOME:-$HOME/.cache}/kmm/k8s-$version-$pins/bin
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kwok)

# fakecri is our own small program: rebuilt (in seconds) whenever its source changes.
build_fakecri() {
  local source_hash
  source_hash=$(sha256sum cmd/fakecri/main.go | cut -c1-12)
  [[ -x $bin/fakecri && $(cat "$bin/fakecri.source" 2>/dev/null) == "$source_hash" ]] && return 0
  nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin/fakecri" ./cmd/fakecri
  echo "$source_hash" > "$bin/fakecri.source"
  echo "build.sh: built fakecri" >&2
}

missing=0
for b in "${binaries[@]}"; do [[ -x $bin/$b ]] || missing=1; done
if ((missing == 0)); then
  echo "build.sh: Kubernetes $version binaries are cached" >&2
  build_fakecri
  echo "$bin"
  exit 0
fi

major=${version#v}; major=${major%%.*}
minor=${version#v*.}; minor=${minor%%.*}
version_pkg=k8s.io/component-base/version
ldflags="-s -w -X $version_pkg.gitVersion=$version -X $version_pkg.gitMajor=$major"
ldflags+=" -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"
ldflags+=" -X $version_pkg.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"

staging=$bin.partial
mkdir -p "$staging"
build() {  # build NAME PACKAGE [DIR]
  local name=$1 package=$2 dir=${3:-.} start
  [[ -x $staging/$name ]] && return 0
  start=$(date +%s)
  (cd "$dir" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$staging/$name" "$package")
  echo "build.sh: built $name in $(( $(date +%s) - start ))s" >&2
}
# One at a time: linking each takes about 2 GiB.
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubelet k8s.io/kubernetes/cmd/kubelet
build kubectl k8s.io/kubernetes/cmd/kubectl
build kwok sigs.k8s.io/kwok/cmd/kwok kwok
rm -rf "$bin" && mv "$staging" "$bin"
build_fakecri
echo "$bin"
