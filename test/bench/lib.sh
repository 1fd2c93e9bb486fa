# lib.sh: what engine.sh, storm.sh and previews.sh share, sourced by them.
# Each drives the Go program in test/bench/engine against ferry serve; they
# differ only in the flags that pick the program's measurement.
#
#   run_engine NAME [FLAG...]
#
# makes a temporary directory (removed on exit), checks git and python3,
# puts the interpreter python3 stands for first on PATH (a version
# manager's shim would add its own start-up to every function start),
# builds ferry and the engine program, runs the program with FLAGs and
# exits with its status. NAME prefixes the script's messages.

run_engine() {
	name=$1
	shift
	root=$(cd "$(dirname "$0")/../.." && pwd)
	tmp=$(mktemp -d -t "ferry-$name.XXXXXX")
	pid=
	trap engine_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	command -v git >/dev/null 2>&1 || { echo "$name.sh: git is not on PATH" >&2; exit 1; }
	command -v python3 >/dev/null 2>&1 || { echo "$name.sh: python3 is not on PATH" >&2; exit 1; }
	py=$(python3 -c 'import sys; print(sys.executable)')
	PATH=$(dirname "$py"):$PATH
	export PATH

	echo "preparing ferry and the benchmark program"
	(cd "$root" && go build -o "$tmp/bin/ferry" ./cmd/ferry && go build -o "$tmp/bin/engine" ./test/bench/engine)
	echo "versions  ferry $(cd "$root" && git describe --tags --always --dirty 2>/dev/null || echo dev), $(go env GOVERSION), $(git --version), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
	"$tmp/bin/engine" -ferry "$tmp/bin/ferry" -root "$root" -data "$tmp/data" "$@" &
	pid=$!
	status=0
	wait "$pid" || status=$?
	pid=
	exit "$status"
}

# engine_cleanup stops the program with SIGTERM, never harder: it stops
# ferry serve and the functions it started, which a SIGKILL would leave.
engine_cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
