#!/bin/sh
# embedded.sh: the embedded target measured in one run on this machine, by
# the Go program in test/bench/embedded:
#
#   gateway   the Go example called directly (its process's port) and
#             through the gateway, by the same load generator in a second
#             process: throughput ratio gateway/direct (8 workers) and the
#             p50 latency the gateway adds (1 worker); the same for two
#             peers, a byte relay and nginx (when installed)
#   cold      the go, python and nodejs examples scaled to zero, then one
#             call: time to its 200
#   switch    under continuous calls, Apply of release R2 of the Python
#             example, then of R1 again (still warm): time until every
#             call is answered by the release applied
#
# Each figure is the median of several runs. The last line is
#
#   embedded: gw_ratio=<x> gw_added_p50_us=<n> cold_go_ms=<n> cold_py_ms=<n> cold_node_ms=<n> switch_ms=<n> rollback_ms=<n>
#
# Run by `make bench`. See test/bench/README.md for what each figure means.
#
# Environment: BENCH_RUNS (default 3) runs of the gateway and switch
# figures; BENCH_COLD_RUNS (default 5) cold starts per runtime;
# BENCH_DURATION (default 3s) of each load-generator run.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-3}
cold_runs=${BENCH_COLD_RUNS:-5}
duration=${BENCH_DURATION:-3s}

fail() {
	echo "embedded.sh: $*" >&2
	exit 1
}

case $runs$cold_runs in
*[!0-9]*) fail "BENCH_RUNS and BENCH_COLD_RUNS must be whole numbers" ;;
esac
[ "$runs" -ge 1 ] && [ "$cold_runs" -ge 1 ] || fail "BENCH_RUNS and BENCH_COLD_RUNS must be at least 1"

tmp=$(mktemp -d -t ferry-bench.XXXXXX)
bench_pid=
cleanup() {
	# why: the program stops the function processes it started when it
	# gets SIGTERM; they run in process groups of their own, so killing
	# the program harder would leave them behind.
	if [ -n "$bench_pid" ]; then
		kill -TERM "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "preparing the benchmark program"
(cd "$root" && go build -o "$tmp/bin/embedded" ./test/bench/embedded) || fail "could not build test/bench/embedded"

# Python and Node.js functions are built on scratch and run with this
# machine's python3 and node, found on PATH. A version manager's shim
# (pyenv's python3 is a shell script that runs pyenv) would add its own
# start-up to every Python cold start, so the interpreter it stands for
# goes first on PATH.
command -v python3 >/dev/null 2>&1 || fail "python3 is not on PATH; the Python figures need it"
command -v node >/dev/null 2>&1 || fail "node is not on PATH; the Node.js figures need it"
py=$(python3 -c 'import sys; print(sys.executable)') || fail "python3 does not run"
PATH=$(dirname "$py"):$PATH:/usr/sbin
export PATH

echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs, $("$py" --version 2>&1) ($py), node $(node --version)"

"$tmp/bin/embedded" -root "$root" -data "$tmp/data" -runs "$runs" -cold-runs "$cold_runs" -duration "$duration" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=
[ "$status" -eq 0 ] || fail "the benchmark program failed (exit status $status)"
