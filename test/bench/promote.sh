#!/bin/sh
# promote.sh: the promotion engine measured in one run on this machine, by
# the Go program in test/bench/promote, with embedded targets:
#
#   promote   a release live and verified in dev, promoted to staging (no
#             approval, no checks): time from the Promote call until
#             GET /staging/hello answers with it
#   rollback  then staging rolled back to the release before (still warm):
#             time from the Rollback call until it answers again
#
# Each figure is the median of several runs, each with a new release. The
# last line is
#
#   promote: promote_ms=<n> rollback_ms=<n>
#
# See test/bench/README.md for what each figure means.
#
# Environment: BENCH_RUNS (default 5) promotions and rollbacks.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-5}

fail() {
	echo "promote.sh: $*" >&2
	exit 1
}

case $runs in
'' | *[!0-9]*) fail "BENCH_RUNS must be a whole number" ;;
esac
[ "$runs" -ge 1 ] || fail "BENCH_RUNS must be at least 1"

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
(cd "$root" && go build -o "$tmp/bin/promote" ./test/bench/promote) || fail "could not build test/bench/promote"

# The Python functions are built on scratch and run with this machine's
# python3. A version manager's shim (pyenv's python3 is a shell script)
# would add its own start-up to every promotion, so the interpreter it
# stands for goes first on PATH.
command -v python3 >/dev/null 2>&1 || fail "python3 is not on PATH; the benchmark's functions need it"
py=$(python3 -c 'import sys; print(sys.executable)') || fail "python3 does not run"
PATH=$(dirname "$py"):$PATH
export PATH

echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs, $("$py" --version 2>&1) ($py)"

"$tmp/bin/promote" -root "$root" -data "$tmp/data" -runs "$runs" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=
[ "$status" -eq 0 ] || fail "the benchmark program failed (exit status $status)"
