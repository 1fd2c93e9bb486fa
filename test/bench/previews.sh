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
. "$(dirname "$0")/lib.sh"
run_engine previews -previews "${BENCH_PREVIEWS:-10}" -previews-live "${BENCH_PREVIEWS_LIVE:-20}"
