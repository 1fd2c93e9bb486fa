#!/bin/sh
# tool.sh NAME [ARGS...]: run a tool pinned in hack/tools/go.mod (ko: in
# hack/tools/ko/go.mod, kept apart for the benchmark alone), building
# it into .cache/tools/<version>/ the first time and reusing it after.
# tool.sh --path NAME: build it if needed and print the binary's path
# instead of running it (tests that start the tool need the path).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
print_path=
if [ "${1:-}" = --path ]; then
	print_path=1
	shift
fi
if [ $# -eq 0 ]; then
	echo "usage: tool.sh [--path] NAME [ARGS...]" >&2
	exit 2
fi
name=$1
shift
moddir=$root/hack/tools
case $name in
controller-gen) pkg=sigs.k8s.io/controller-tools/cmd/controller-gen ;;
registry) pkg=github.com/distribution/distribution/v3/cmd/registry ;;
ko) pkg=github.com/google/ko moddir=$root/hack/tools/ko ;;
*) echo "tool.sh: unknown tool $name" >&2; exit 2 ;;
esac
# The module is the package path up to /cmd/, or the whole path when the
# main package sits at the module's root (ko).
mod=${pkg%%/cmd/*}
version=$(cd "$moddir" && go list -m -f '{{.Version}}' "$mod")
bin=${FERRY_CACHE:-$root/.cache}/tools/$name-$version
if [ ! -x "$bin" ]; then
	echo "tool.sh: building $name $version (once)" >&2
	# A temporary name of our own, so that two builds at once (parallel
	# test packages) never write the same file; mv makes it appear whole.
	tmp=$bin.tmp.$$
	mkdir -p "$(dirname "$bin")"
	trap 'rm -f "$tmp"' EXIT
	(cd "$moddir" && go build -o "$tmp" "$pkg") && mv -f "$tmp" "$bin"
	trap - EXIT
fi
if [ -n "$print_path" ]; then
	echo "$bin"
	exit 0
fi
exec "$bin" "$@"
