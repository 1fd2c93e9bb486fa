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
. "$(dirname "$0")/lib.sh"
run_engine engine -runs "${BENCH_RUNS:-5}" -sources "${BENCH_SOURCES:-200}" -watch "${BENCH_WATCH:-2m}"
