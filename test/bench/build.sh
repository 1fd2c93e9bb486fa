#!/bin/sh
# build.sh: ferry's build speed against ko's, measured in one run on this
# machine, as ratios ferry/ko. Both tools build the same Go hello program
# and push it to the same local registry (ferry's embedded one):
#
#   cold    empty caches: a fresh GOCACHE per run, an empty ferry build
#           cache, new repositories in the registry
#   noop    the same build again, nothing changed, caches warm
#   change  one line of hello/hello.go changed, caches warm
#
# and ferry alone rebuilds the Python example after a one-line change
# (--base python=scratch, cache warm). Each step runs several times and the
# median counts; the two tools take turns going first. The last line is
#
#   build: noop=<ratio>x change=<ratio>x python_change_ms=<n>
#
# Run by `make bench`. See test/bench/README.md for what each figure means.
#
# Environment: BENCH_RUNS (default 5) runs of noop, change and python;
# BENCH_COLD_RUNS (default 3) cold runs, each of which compiles the
# standard library twice; FERRY, a ferry binary to measure instead of one
# built from this tree.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-5}
cold_runs=${BENCH_COLD_RUNS:-3}
ko_version=v0.19.1

# Targets from the issue: ferry/ko ratios, and milliseconds.
target_noop=0.10
target_change=1.00
target_python_ms=150

fail() {
	echo "build.sh: $*" >&2
	exit 1
}

case $runs$cold_runs in
*[!0-9]*) fail "BENCH_RUNS and BENCH_COLD_RUNS must be whole numbers" ;;
esac
[ "$runs" -ge 1 ] && [ "$cold_runs" -ge 1 ] || fail "BENCH_RUNS and BENCH_COLD_RUNS must be at least 1"

# Wall-clock time in nanoseconds. GNU date has %N; others print it as is.
now_ns() { date +%s%N; }
case $(now_ns) in
*[!0-9]*) fail "date +%s%N does not give nanoseconds here; install GNU coreutils date" ;;
esac

started=$(now_ns)
tmp=$(mktemp -d -t ferry-bench.XXXXXX)
reg_pid=
cleanup() {
	if [ -n "$reg_pid" ]; then
		kill -TERM "$reg_pid" 2>/dev/null || true
		wait "$reg_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ---------------------------------------------------------------

echo "preparing ferry, ko and the registry"
if [ -n "${FERRY:-}" ]; then
	ferry=$FERRY
	[ -x "$ferry" ] || fail "FERRY=$ferry is not an executable file"
else
	ferry=$tmp/bin/ferry
	(cd "$root" && go build -trimpath -o "$ferry" ./cmd/ferry) || fail "could not build ferry from this tree"
fi
(cd "$root" && go build -o "$tmp/bin/emptybase" ./test/bench/emptybase) || fail "could not build test/bench/emptybase"
ko=$("$root/hack/tool.sh" --path ko) || fail "could not build ko with hack/tool.sh (is it pinned in hack/tools/go.mod?)"
"$ko" version >/dev/null 2>&1 || fail "$ko does not run"
arch=$(go env GOARCH)
goversion=$(go env GOVERSION)

# Keep the host's registry credentials and Docker settings out of it.
export DOCKER_CONFIG="$tmp/docker"
mkdir -p "$DOCKER_CONFIG"

# ---- registry ------------------------------------------------------------

"$ferry" registry serve --addr 127.0.0.1:0 --data "$tmp/registry" >"$tmp/registry.out" 2>"$tmp/registry.err" &
reg_pid=$!
addr=
i=0
while [ $i -lt 100 ]; do
	addr=$(sed -n 's|^registry: serving on http://\([^ ]*\) .*|\1|p' "$tmp/registry.out")
	[ -n "$addr" ] && break
	if ! kill -0 "$reg_pid" 2>/dev/null; then
		cat "$tmp/registry.err" >&2
		fail "ferry registry serve exited before it served"
	fi
	sleep 0.1
	i=$((i + 1))
done
[ -n "$addr" ] || fail "ferry registry serve printed no address within 10 s"

# emptybase waits for GET /v2/ to answer, then pushes ko's base image: an
# empty OCI image for linux/$arch (ferry's Go images have no base either).
base=$("$tmp/bin/emptybase" -wait 30s -arch "$arch" "$addr/base:empty") ||
	fail "could not push the empty base image to the registry"

# ---- sources -------------------------------------------------------------

# ferry builds a copy of examples/go; ko builds a copy of the same module
# with a main package of its own (ko builds main packages only) that serves
# hello.Handle over HTTP, as the main ferry generates does.
cp -R "$root/examples/go" "$tmp/ferry-go"
cp -R "$root/examples/go" "$tmp/ko-go"
mkdir -p "$tmp/ko-go/cmd/hello"
cat >"$tmp/ko-go/cmd/hello/main.go" <<'EOF'
// Command hello serves hello.Handle on $PORT: the request body is the
// handler's data, its result the JSON answer.
package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"

	"example.com/hello/hello"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := hello.Handle(r.Context(), data)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(out); err != nil {
			log.Print(err)
		}
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
EOF
cp -R "$root/examples/python" "$tmp/ferry-py"

# set_go_message MSG writes MSG as the greeting in both Go copies.
set_go_message() {
	for f in "$tmp/ferry-go/hello/hello.go" "$tmp/ko-go/hello/hello.go"; do
		sed "s/Message: \"[^\"]*\"/Message: \"$1\"/" "$f" >"$f.new" && mv "$f.new" "$f"
		grep -q "Message: \"$1\"" "$f" || fail "could not change the message in $f"
	done
}

set_python_message() {
	f=$tmp/ferry-py/hello/main.py
	sed "s/\"message\": \"[^\"]*\"/\"message\": \"$1\"/" "$f" >"$f.new" && mv "$f.new" "$f"
	grep -q "\"message\": \"$1\"" "$f" || fail "could not change the message in $f"
}

# ---- one timed build of each tool ----------------------------------------

# ferry_build GOCACHE CACHE REPO SRC [ARGS...] builds SRC with ferry and
# sets ms to its wall-clock time; its JSON answer is in $tmp/ferry.json.
ferry_build() {
	gc=$1 cache=$2 repo=$3 src=$4
	shift 4
	t0=$(now_ns)
	if ! GOCACHE=$gc "$ferry" build "$src" --registry "$addr/$repo" -o json --cache "$cache" "$@" >"$tmp/ferry.json" 2>"$tmp/ferry.err"; then
		cat "$tmp/ferry.err" >&2
		fail "ferry build $src failed"
	fi
	t1=$(now_ns)
	ms=$(((t1 - t0) / 1000000))
}

# ko_build GOCACHE REPO builds the ko copy with ko and sets ms; the image
# it pushed is the last line of $tmp/ko.out.
ko_build() {
	gc=$1 repo=$2
	t0=$(now_ns)
	if ! (cd "$tmp/ko-go" && GOCACHE=$gc KO_DOCKER_REPO=$addr/$repo KO_DEFAULTBASEIMAGE=$base \
		"$ko" build --bare --platform="linux/$arch" --sbom=none ./cmd/hello >"$tmp/ko.out" 2>"$tmp/ko.err"); then
		cat "$tmp/ko.err" >&2
		fail "ko build failed"
	fi
	t1=$(now_ns)
	ms=$(((t1 - t0) / 1000000))
}

# ferry_cached says whether the last ferry build reused its image.
ferry_cached() {
	if grep -q '"cached": true' "$tmp/ferry.json"; then echo true; else echo false; fi
}

ko_image() { tail -n 1 "$tmp/ko.out"; }

median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# verdict VALUE TARGET: "met" when VALUE <= TARGET.
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v + 0 <= t + 0) print "met"; else print "MISSED" }'; }

# pair N GOCACHE_F CACHE_F REPO_F GOCACHE_K REPO_K runs one ferry
# build and one ko build, ferry first on odd runs and ko first on even
# ones, and sets fms and kms.
pair() {
	if [ $(($1 % 2)) -eq 1 ]; then
		ferry_build "$2" "$3" "$4" "$tmp/ferry-go"
		fms=$ms
		ko_build "$5" "$6"
		kms=$ms
	else
		ko_build "$5" "$6"
		kms=$ms
		ferry_build "$2" "$3" "$4" "$tmp/ferry-go"
		fms=$ms
	fi
}

echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), ko $ko_version, $goversion linux/$arch, $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
echo "method    $cold_runs cold runs, $runs runs of every other step, medians; wall clock of each whole command"

# ---- (c) cold ------------------------------------------------------------

# Every cold run starts from nothing but the shared module cache: its own
# GOCACHE per tool, an empty ferry cache, repositories never pushed to.
# The last run's caches are kept: they are the warm caches of the steps
# after it.
cold_f= cold_k=
n=1
while [ "$n" -le "$cold_runs" ]; do
	pair "$n" "$tmp/cold$n/gocache-ferry" "$tmp/cold$n/ferry-cache" "cold$n" \
		"$tmp/cold$n/gocache-ko" "ko-cold$n"
	[ "$(ferry_cached)" = false ] || fail "cold run $n: ferry reused a cached image"
	printf 'cold    %d/%d  ferry %6d ms  ko %6d ms\n' "$n" "$cold_runs" "$fms" "$kms"
	cold_f="$cold_f $fms" cold_k="$cold_k $kms"
	if [ "$n" -lt "$cold_runs" ]; then
		rm -rf "$tmp/cold$n"
	fi
	n=$((n + 1))
done
warm=$tmp/cold$cold_runs
gc_f=$warm/gocache-ferry ferry_cache=$warm/ferry-cache repo_f=cold$cold_runs
gc_k=$warm/gocache-ko repo_k=ko-cold$cold_runs
cold_fm=$(median $cold_f) cold_km=$(median $cold_k)
cold_ratio=$(ratio "$cold_fm" "$cold_km")
printf 'cold    median  ferry %6d ms  ko %6d ms  ferry/ko %sx\n' "$cold_fm" "$cold_km" "$cold_ratio"

# ---- (a) no-op -----------------------------------------------------------

last_ko=$(ko_image)
noop_f= noop_k=
n=1
while [ "$n" -le "$runs" ]; do
	pair "$n" "$gc_f" "$ferry_cache" "$repo_f" "$gc_k" "$repo_k"
	[ "$(ferry_cached)" = true ] || fail "no-op run $n: ferry built the image again"
	[ "$(ko_image)" = "$last_ko" ] || fail "no-op run $n: ko pushed a different image"
	printf 'noop    %d/%d  ferry %6d ms  ko %6d ms\n' "$n" "$runs" "$fms" "$kms"
	noop_f="$noop_f $fms" noop_k="$noop_k $kms"
	n=$((n + 1))
done
noop_fm=$(median $noop_f) noop_km=$(median $noop_k)
noop_ratio=$(ratio "$noop_fm" "$noop_km")
printf 'noop    median  ferry %6d ms  ko %6d ms  ferry/ko %sx\n' "$noop_fm" "$noop_km" "$noop_ratio"

# ---- (b) one-line change -------------------------------------------------

# Every run writes a message no build has seen, so neither ferry's cache
# nor Go's build cache can hold the result: two alternating values would
# let both serve the second change from the first.
change_f= change_k=
n=1
while [ "$n" -le "$runs" ]; do
	set_go_message "hello from go, edit $n"
	pair "$n" "$gc_f" "$ferry_cache" "$repo_f" "$gc_k" "$repo_k"
	[ "$(ferry_cached)" = false ] || fail "change run $n: ferry reused the old image"
	[ "$(ko_image)" != "$last_ko" ] || fail "change run $n: ko pushed the old image"
	last_ko=$(ko_image)
	printf 'change  %d/%d  ferry %6d ms  ko %6d ms\n' "$n" "$runs" "$fms" "$kms"
	change_f="$change_f $fms" change_k="$change_k $kms"
	n=$((n + 1))
done
change_fm=$(median $change_f) change_km=$(median $change_k)
change_ratio=$(ratio "$change_fm" "$change_km")
printf 'change  median  ferry %6d ms  ko %6d ms  ferry/ko %sx\n' "$change_fm" "$change_km" "$change_ratio"

# ---- Python one-line change ----------------------------------------------

py_cache=$tmp/ferry-cache-py
ferry_build "$gc_f" "$py_cache" py "$tmp/ferry-py" --base python=scratch
printf 'python  warm-up  ferry %6d ms (not counted)\n' "$ms"
py=
n=1
while [ "$n" -le "$runs" ]; do
	set_python_message "hello from python, edit $n"
	ferry_build "$gc_f" "$py_cache" py "$tmp/ferry-py" --base python=scratch
	[ "$(ferry_cached)" = false ] || fail "python run $n: ferry reused the old image"
	printf 'python  %d/%d  ferry %6d ms\n' "$n" "$runs" "$ms"
	py="$py $ms"
	n=$((n + 1))
done
py_m=$(median $py)
printf 'python  median  ferry %6d ms\n' "$py_m"

# ---- summary -------------------------------------------------------------

printf 'target  noop   ferry/ko %sx <= %sx: %s\n' "$noop_ratio" "$target_noop" "$(verdict "$noop_ratio" "$target_noop")"
printf 'target  change ferry/ko %sx <= %sx: %s\n' "$change_ratio" "$target_change" "$(verdict "$change_ratio" "$target_change")"
printf 'target  python change %d ms <= %d ms: %s\n' "$py_m" "$target_python_ms" "$(verdict "$py_m" "$target_python_ms")"
printf 'info    cold   ferry/ko %sx (no target)\n' "$cold_ratio"
printf 'total   took %d s\n' $((($(now_ns) - started) / 1000000000))
echo "build: noop=${noop_ratio}x change=${change_ratio}x python_change_ms=$py_m"
