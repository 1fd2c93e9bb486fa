#!/bin/sh
# fuzz.sh FUZZTIME: fuzz the manifest loader. Go's fuzzing engine now and
# then ends a run that found nothing with "context deadline exceeded"
# (a worker still busy with a new input when the time is up); such a run
# is tried once more. A run that found a failing input (it writes one
# under testdata/fuzz) is never tried again: it fails.
set -u
go=${GO:-go}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for try in 1 2; do
	if $go test -run='^$' -fuzz='^FuzzLoad$' -fuzztime="$1" -fuzzminimizetime=5s ./manifests >"$out" 2>&1; then
		cat "$out"
		exit 0
	fi
	cat "$out"
	if grep -q 'Failing input written' "$out" || ! grep -q 'context deadline exceeded' "$out"; then
		exit 1
	fi
	echo "fuzz.sh: the fuzzing engine stopped on its own deadline with no failing input; trying once more ($try of 2)" >&2
done
exit 1
