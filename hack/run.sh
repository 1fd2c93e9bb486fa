#!/bin/sh
# run.sh: what `make run` does until `ferry serve` lands. It validates the
# Python example, starts ferry's embedded registry under .ferry-data, builds
# the example into it (no base image, so no network is needed), builds it
# again to show the cache, and stops the registry.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
ferry=$root/bin/ferry
data=$root/.ferry-data
mkdir -p "$data"
out=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT INT TERM

"$ferry" validate "$root/examples/python"
"$ferry" registry serve --addr 127.0.0.1:0 --data "$data/registry" >"$out" &
pid=$!
addr=
for _ in $(seq 100); do
	addr=$(sed -n 's|^registry: serving on http://\([^ ]*\) .*|\1|p' "$out")
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { echo "run.sh: the registry did not start" >&2; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { echo "run.sh: the registry did not start in 10 s" >&2; exit 1; }
echo "registry on $addr"
for pass in first again; do
	echo "== ferry build ($pass)"
	"$ferry" build "$root/examples/python" --registry "$addr/examples" \
		--base python=scratch --cache "$data/build-cache"
done
