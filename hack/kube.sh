#!/bin/sh
# kube.sh [--dir]: build the Kubernetes binaries the tests run (a real
# kube-apiserver, etcd, kubectl; and for the single-node cluster the
# kubelet, controller-manager, scheduler, containerd and its runc shim)
# from Go modules, once, into a cache folder outside the clone, so that a
# fresh clone on the same machine (CI) reuses them. Prints the folder.
#
# No download site for release binaries is reachable here, only the Go
# module proxy, so each binary is built from source: Kubernetes from a
# throwaway module that requires k8s.io/kubernetes and points every
# staging repository at its published module of the same minor (its own
# go.mod points them at ./staging, which a module cannot). The version is
# linked in, or the binaries say v0.0.0-master and kubectl refuses them.
# About 15 minutes on two cores from empty caches; nothing after.
set -eu
KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.7.3
CONTAINERD_VERSION=v2.4.2
dir=${FERRY_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/kube-$KUBE_VERSION}
mkdir -p "$dir"
[ "${1:-}" = --dir ] && shift

want="kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler etcd containerd containerd-shim-runc-v2"
missing=""
for b in $want; do
	[ -x "$dir/$b" ] || missing="$missing $b"
done
if [ -z "$missing" ]; then
	echo "$dir"
	exit 0
fi

# One builder at a time: parallel test packages may all ask at once.
exec 9>"$dir/.lock"
flock 9
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod

build_kube() {
	mkdir -p "$work/kube"
	cd "$work/kube"
	{
		echo "module ferry.local/kubebin"
		echo "go 1.26.0"
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
		modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod
		sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/.*|replace \1 => \1 '"$STAGING_VERSION"'|p' "$modfile"
	} >go.mod
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	ld="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	go mod download k8s.io/kubernetes
	go build -trimpath -ldflags "$ld" -o "$work/out/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl \
		k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler
}

build_etcd() {
	mkdir -p "$work/etcd"
	cd "$work/etcd"
	printf 'module ferry.local/etcdbin\ngo 1.26.0\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >go.mod
	go build -trimpath -ldflags "-s -w" -o "$work/out/etcd" go.etcd.io/etcd/server/v3
}

build_containerd() {
	mkdir -p "$work/containerd"
	cd "$work/containerd"
	printf 'module ferry.local/containerdbin\ngo 1.26.0\nrequire github.com/containerd/containerd/v2 %s\n' "$CONTAINERD_VERSION" >go.mod
	go build -trimpath -tags no_btrfs -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
		-o "$work/out/" github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
}

mkdir -p "$work/out"
echo "kube.sh: building$missing into the cache (once; about 15 minutes on two cores)" >&2
start=$(date +%s)
case "$missing" in *kube*) (build_kube) ;; esac
case "$missing" in *etcd*) (build_etcd) ;; esac
case "$missing" in *containerd*) (build_containerd) ;; esac
for b in $missing; do
	[ -x "$work/out/$b" ] || { echo "kube.sh: $b was not built" >&2; exit 1; }
	mv -f "$work/out/$b" "$dir/$b"
done
echo "kube.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$dir"
