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
#   embedded: gw_ratio=<x> gw_added_p50_us=<n> cold_go_ms=<n> cold_py_ms=<n> cold_node_ms=<n> switch_ms=<n> rollback_ms=<n> sandbox_ms=<x>
#
# Functions run in the sandbox, as ferry serve runs them; sandbox_ms is
# the sandbox's own start (bubblewrap running /bin/true), part of each
# cold start.
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

# Python and Node.js functions are built on scratch and run, in ferry's
# sandbox (bubblewrap, which hack/deps.sh installs), with this machine's
# python3 and node from the fixed system PATH (/usr/local/bin, /usr/bin,
# /bin): never a version manager's shim on this shell's PATH.
py=
for d in /usr/local/bin /usr/bin /bin; do
	[ -x "$d/python3" ] && { py=$d/python3; break; }
done
[ -n "$py" ] || fail "python3 is not installed in /usr/local/bin, /usr/bin or /bin; the Python figures need it (hack/deps.sh installs it)"
command -v node >/dev/null 2>&1 || fail "node is not installed; the Node.js figures need it"
[ -x /usr/bin/bwrap ] || [ -x /usr/local/bin/bwrap ] || fail "bubblewrap is not installed; functions run in it (hack/deps.sh installs it)"
PATH=$PATH:/usr/sbin
export PATH

echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs, $("$py" --version 2>&1) ($py), node $(node --version)"

"$tmp/bin/embedded" -root "$root" -data "$tmp/data" -runs "$runs" -cold-runs "$cold_runs" -duration "$duration" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=
[ "$status" -eq 0 ] || fail "the benchmark program failed (exit status $status)"
