#!/bin/sh
# kube.sh: ferry's Kubernetes controller measured from cold, by the Go
# program in test/bench/kube: BENCH_KUBE_N (default 500) Functions and as
# many HTTPTriggers are in a real kube-apiserver (hack/kube.sh builds it
# once) before `ferry controller` starts; the figure is the time until
# every Deployment, Service, HPA and HTTPRoute exists and every Function
# has its Ready condition, with the controller's peak memory. The last
# line is
#
#   kube: reconcile_500_s=<n> controller_peak_mib=<n>
#
# See test/bench/README.md.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
n=${BENCH_KUBE_N:-500}
case $n in
'' | *[!0-9]*) echo "kube.sh: BENCH_KUBE_N must be a whole number" >&2; exit 1 ;;
esac

tmp=$(mktemp -d -t ferry-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "preparing ferry and the benchmark program"
(cd "$root" && go build -o "$tmp/ferry" ./cmd/ferry && go build -o "$tmp/kube" ./test/bench/kube)
echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
"$tmp/kube" -ferry "$tmp/ferry" -n "$n"
