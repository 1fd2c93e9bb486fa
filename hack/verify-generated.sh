#!/bin/sh
# verify-generated.sh: fail if generated code differs from what the
# generators write now, and check that the API markers make valid CRDs.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp manifests/v1alpha1/zz_generated.deepcopy.go "$tmp/before.go"
hack/tool.sh controller-gen object:headerFile=hack/boilerplate.go.txt paths=./manifests/...
if ! cmp -s "$tmp/before.go" manifests/v1alpha1/zz_generated.deepcopy.go; then
	diff -u "$tmp/before.go" manifests/v1alpha1/zz_generated.deepcopy.go || true
	cp "$tmp/before.go" manifests/v1alpha1/zz_generated.deepcopy.go
	echo "verify: zz_generated.deepcopy.go is stale; run make generate and commit it" >&2
	exit 1
fi
go run ./cmd/ferry docs > "$tmp/cli.md"
if ! cmp -s "$tmp/cli.md" docs/cli.md; then
	diff -u docs/cli.md "$tmp/cli.md" || true
	echo "verify: docs/cli.md is stale; run make generate and commit it" >&2
	exit 1
fi
# The CRDs are not committed yet; generating them proves the markers parse.
hack/tool.sh controller-gen crd paths=./manifests/... output:crd:dir="$tmp/crds"
n=$(ls "$tmp/crds" | wc -l)
if [ "$n" -ne 6 ]; then
	echo "verify: expected 6 CRDs from the API types, got $n" >&2
	exit 1
fi
echo "verify: generated code is current; $n CRDs generate"
