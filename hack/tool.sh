#!/bin/sh
# tool.sh NAME [ARGS...]: run a tool pinned in hack/tools/go.mod, building
# it into .cache/tools/<version>/ the first time and reusing it after.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
name=$1
shift
case $name in
controller-gen) pkg=sigs.k8s.io/controller-tools/cmd/controller-gen ;;
*) echo "tool.sh: unknown tool $name" >&2; exit 2 ;;
esac
mod=${pkg%%/cmd/*}
version=$(cd "$root/hack/tools" && go list -m -f '{{.Version}}' "$mod")
bin=${FERRY_CACHE:-$root/.cache}/tools/$name-$version
if [ ! -x "$bin" ]; then
	echo "tool.sh: building $name $version (once)" >&2
	(cd "$root/hack/tools" && go build -o "$bin.tmp" "$pkg") && mv "$bin.tmp" "$bin"
fi
exec "$bin" "$@"
