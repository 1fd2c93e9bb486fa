#!/bin/sh
# previews.sh: pull-request previews under ferry serve, driven by the Go
# program in test/bench/engine (previews.go) against a real Git smart-HTTP
# server (git http-backend):
#
#   one repository of the Python example whose Pipeline enables previews;
#   once dev answers, 10 pull requests (BENCH_PREVIEWS) are opened one
#   after another: refs/pull/N/head pushed with its own greeting, then a
#   signed GitHub pull_request "opened" webhook. Each is timed from the
#   webhook until GATEWAY/pr-N-app/hello answers its greeting. Then more
#   are opened until 20 (BENCH_PREVIEWS_LIVE) previews answer at once, and
#   ferry serve's RSS is read from its /metrics.
#
# The last line is
#
#   previews: open_p50_ms=<n> open_p95_ms=<n> rss_20_mib=<n>
#
# make bench runs it. It takes about a minute.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d -t ferry-previews.XXXXXX)
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

command -v git >/dev/null 2>&1 || { echo "previews.sh: git is not on PATH" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "previews.sh: python3 is not on PATH" >&2; exit 1; }
py=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$py"):$PATH
export PATH

echo "preparing ferry and the benchmark program"
(cd "$root" && go build -o "$tmp/bin/ferry" ./cmd/ferry && go build -o "$tmp/bin/engine" ./test/bench/engine)
echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION), $(git --version), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
"$tmp/bin/engine" -ferry "$tmp/bin/ferry" -root "$root" -data "$tmp/data" \
	-previews "${BENCH_PREVIEWS:-10}" -previews-live "${BENCH_PREVIEWS_LIVE:-20}" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
exit "$status"
