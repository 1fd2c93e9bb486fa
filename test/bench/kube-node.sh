#!/bin/sh
# kube-node.sh: from a commit to a pod answering, on a real single-node
# cluster (hack/node.sh), once. It runs TestKubeNodeCommitToPod
# (test/kubenode_test.go) with FERRY_BENCH_KUBE_NODE set: ferry serve
# builds a commit of a Go function, deploys it to dev (embedded) and
# promotes it to staging (target: kube) through both stages' checks;
# `ferry controller` makes the Deployment; the figure is the time from
# `git push` of a second commit until the pod of staging answers with its
# code at its pod IP. The last line is
#
#   kube-node: commit_to_pod_s=<n> first_commit_to_pod_s=<n> node_ready_s=<n>
#
# first_commit_to_pod_s is the same for the first commit (ferry serve just
# started, cold build cache); node_ready_s the node's start. It needs root
# and hack/deps.sh (runc, the CNI plugins); see test/bench/README.md.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "kube-node.sh: the node needs root (a kubelet)" >&2; exit 1; }

out=$(mktemp -t ferry-kube-node.XXXXXX)
trap 'rm -f "$out"' EXIT
echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
if ! (cd "$root" && FERRY_BENCH_KUBE_NODE=1 go test -count=1 -run '^TestKubeNodeCommitToPod$' -v -timeout 30m ./test/) >"$out" 2>&1; then
	cat "$out" >&2
	echo "kube-node.sh: the test failed" >&2
	exit 1
fi
grep -E '^\s+kubenode_test.go:[0-9]+: (node Ready|first commit|second commit)' "$out" || true
line=$(grep '^kube-node: ' "$out" || true)
[ -n "$line" ] || { cat "$out" >&2; echo "kube-node.sh: the test printed no figure (skipped?)" >&2; exit 1; }
echo "$line"
