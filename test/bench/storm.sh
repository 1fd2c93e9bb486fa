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
. "$(dirname "$0")/lib.sh"
run_engine storm -storm "${BENCH_STORM_SOURCES:-20}" -storm-commits "${BENCH_STORM_COMMITS:-5}"
