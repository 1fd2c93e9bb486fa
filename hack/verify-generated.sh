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
hack/crds.sh "$tmp/crds"
if ! diff -r config/crd "$tmp/crds" >"$tmp/crd.diff"; then
	cat "$tmp/crd.diff"
	echo "verify: config/crd is stale; run make generate and commit it" >&2
	exit 1
fi
echo "verify: generated code and CRDs are current"
