#!/bin/sh
# storm.sh: ferry serve under a storm of commits, measured through its own
# /metrics by the Go program in test/bench/engine (storm.go), against a
# real Git smart-HTTP server (git http-backend):
#
#   20 sources (BENCH_STORM_SOURCES) of the Python example, polled every
#   second, each deploying to an environment of its own; once every first
#   deploy answers, 5 commits (BENCH_STORM_COMMITS) are pushed to each
#   source, all sources at once. Reported: the time until every source's
#   last commit answers in its environment, and ferry serve's peak RSS,
#   open descriptors and goroutines, sampled from /metrics every 500 ms,
#   and the runs that failed.
#
# The last line is
#
#   storm: sources=<n> commits=<n> converge_s=<s> peak_rss_mib=<n> peak_fds=<n> peak_goroutines=<n> failed_runs=<n>
#
# Not run by make test or make bench. It takes under a minute.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d -t ferry-storm.XXXXXX)
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

command -v git >/dev/null 2>&1 || { echo "storm.sh: git is not on PATH" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "storm.sh: python3 is not on PATH" >&2; exit 1; }
py=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$py"):$PATH
export PATH

echo "preparing ferry and the benchmark program"
(cd "$root" && go build -o "$tmp/bin/ferry" ./cmd/ferry && go build -o "$tmp/bin/engine" ./test/bench/engine)
echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION), $(git --version), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
"$tmp/bin/engine" -ferry "$tmp/bin/ferry" -root "$root" -data "$tmp/data" \
	-storm "${BENCH_STORM_SOURCES:-20}" -storm-commits "${BENCH_STORM_COMMITS:-5}" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
exit "$status"
