#!/bin/sh
# engine.sh: ferry serve measured end to end on this machine, by the Go
# program in test/bench/engine, against a real Git smart-HTTP server (git
# http-backend):
#
#   webhook   a commit to the Python example pushed, then a signed GitHub
#             push webhook: time from the push to the first answer of the
#             new code at the gateway (p50)
#   poll      the same for a source polled every second (p50)
#   watcher   200 sources (BENCH_SOURCES) polled every 30 s with nothing
#             new, for 2 minutes (BENCH_WATCH): CPU ferry serve used, in
#             % of one core
#
# The last line is
#
#   engine: webhook_p50_ms=<n> poll_p50_ms=<n> watcher_cpu_pct=<n>
#
# Run by `make bench`. It takes about four minutes.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d -t ferry-engine.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v git >/dev/null 2>&1 || { echo "engine.sh: git is not on PATH" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "engine.sh: python3 is not on PATH" >&2; exit 1; }
py=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$py"):$PATH
export PATH

echo "preparing ferry and the benchmark program"
(cd "$root" && go build -o "$tmp/bin/ferry" ./cmd/ferry && go build -o "$tmp/bin/engine" ./test/bench/engine)
echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION), $(git --version), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
"$tmp/bin/engine" -ferry "$tmp/bin/ferry" -root "$root" -data "$tmp/data" \
	-runs "${BENCH_RUNS:-5}" -sources "${BENCH_SOURCES:-200}" -watch "${BENCH_WATCH:-2m}" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
exit "$status"
