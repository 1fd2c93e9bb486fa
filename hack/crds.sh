#!/bin/sh
# crds.sh DIR: write the CRDs of the kinds a release deploys into DIR,
# generated from manifests/v1alpha1. The Pipeline kind is left out: it
# configures ferry's own pipeline and never goes to a cluster.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
mkdir -p "$out"
rm -f "$out"/*.yaml
cd "$root"
hack/tool.sh controller-gen crd paths=./manifests/... output:crd:dir="$out"
rm -f "$out/ferry.dev_pipelines.yaml"
