#!/bin/sh
# imports.sh [MODULE_DIR]: fail when a package of the module imports one it
# must not. Imports go one way, from the composition root down:
#
#   layer 0  internal, config, manifests, store   (import no layer above)
#   layer 1  build
#   layer 2  environments and its targets
#   layer 3  watcher, pipeline, promote
#   layer 4  server
#   layer 5  cmd
#   test     the end-to-end tests and the helpers of every package's tests
#            (and hack, the tests of these scripts; and internal/kubetest,
#            internal/kubenode, which start real clusters for tests)
#
# and only server, cmd and test know a concrete target
# (environments/embedded, environments/kube): the rest asks
# environments.Target, so either target fits under it. A target's own
# subpackages may import it; one target never imports another. Non-test
# code never imports test/. Test files are held to the same rules: a test
# that needs a real target takes it from test/testenv.
#
# A package in no layer is an error too, so a new top-level folder gets a
# place here. MODULE_DIR defaults to this repository; hack/imports_test.go
# runs the script on the fixtures under hack/testdata/imports. $GO names
# the go command (default go).
set -eu
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$dir"
go=${GO:-go}
module=$(GOWORK=off $go list -m)
# One line per package: PATH|imports|test imports (the package's own and
# its _test package's). Listed first, so that go list's failure fails.
list=$(GOWORK=off $go list -f '{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}' ./...)
printf '%s\n' "$list" |
	awk -v module="$module" -F'|' '
function rel(p) {
	if (p == module) return "."
	if (index(p, module "/") == 1) return substr(p, length(module) + 2)
	return ""
}
function top(p) { sub(/\/.*/, "", p); return p }
function under(p, root) { return p == root || index(p, root "/") == 1 }
function helper(p) { return under(p, "test") || under(p, "internal/kubetest") || under(p, "internal/kubenode") }
function layer(p,   t) {
	if (helper(p)) return 9
	t = top(p)
	if (t == "internal" || t == "config" || t == "manifests" || t == "store") return 0
	if (t == "build") return 1
	if (t == "environments") return 2
	if (t == "watcher" || t == "pipeline" || t == "promote") return 3
	if (t == "server") return 4
	if (t == "cmd") return 5
	if (t == "test" || t == "hack") return 9
	return -1
}
function target(p) {
	if (under(p, "environments/embedded")) return "environments/embedded"
	if (under(p, "environments/kube")) return "environments/kube"
	return ""
}
function names(l) {
	return l == 0 ? "internal, config, manifests, store" : l == 1 ? "build" : l == 2 ? "environments" : l == 3 ? "watcher, pipeline, promote" : l == 4 ? "server" : "cmd"
}
function say(pkg, dep, test, rule) {
	printf "%s imports %s%s: %s\n", pkg, dep, test ? " (in a test)" : "", rule
	bad = 1
}
function check(pkg, list, test,   n, i, deps, d, lp, ld, t) {
	n = split(list, deps, " ")
	for (i = 1; i <= n; i++) {
		d = rel(deps[i])
		if (d == "" || d == pkg || seen[pkg, d, test]++) continue
		lp = layer(pkg); ld = layer(d)
		if (ld < 0) continue # reported as a package of its own
		if (helper(d)) {
			if (!test && lp != 9) say(pkg, d, test, "only tests import test helpers")
			continue
		}
		t = target(d)
		if (t != "" && target(pkg) != "" && !under(pkg, t)) {
			say(pkg, d, test, "one target never imports another; share code through environments")
			continue
		}
		if (t != "" && lp != 4 && lp != 5 && lp != 9 && !under(pkg, t)) {
			say(pkg, d, test, "only server, cmd and test know a concrete target; ask environments.Target (a test takes one from test/testenv)")
			continue
		}
		if (lp != 9 && ld > lp)
			say(pkg, d, test, sprintf("%s (layer %d) must not import %s (layer %d): imports go from the composition root down", names(lp), lp, names(ld), ld))
	}
}
{
	pkg = rel($1)
	if (pkg == "") next
	if (layer(pkg) < 0) {
		printf "%s is in no layer: give its folder one in hack/imports.sh\n", pkg
		bad = 1
		next
	}
	check(pkg, $2, 0)
	check(pkg, $3, 1)
}
END {
	if (bad) {
		print "imports: the imports above break the rules in hack/imports.sh"
		exit 1
	}
	print "imports: every import goes one way, and only server, cmd and test know a concrete target"
}
'
