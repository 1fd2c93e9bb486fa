#!/bin/sh
# run.sh: what `make run` runs. The first time, it makes a Git repository
# from examples/python (the demo a newcomer commits to) and a ferry serve
# configuration that watches it, both under .ferry-run/; every time, it
# prints the URLs and the one commit that shows a deploy, then runs
# ferry serve in the foreground. Nothing outside .ferry-run/ is touched.
#
# Environment: FERRY (the binary, default bin/ferry), LISTEN (API,
# default 127.0.0.1:8080), ADDR (gateway, default 127.0.0.1:8081),
# REGISTRY_ADDR (embedded registry, default 127.0.0.1:8082), FERRY_RUN_DIR
# (where it all lives, default .ferry-run).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
ferry=${FERRY:-$root/bin/ferry}
listen=${LISTEN:-127.0.0.1:8080}
addr=${ADDR:-127.0.0.1:8081}
regaddr=${REGISTRY_ADDR:-127.0.0.1:8082}
dir=${FERRY_RUN_DIR:-$root/.ferry-run}
repo=$dir/demo-repo
lock=$dir/data/ferry.lock

# why: a second make run must not touch the first one's repository or
# configuration; ferry serve holds an flock on the lock file while it runs
# and writes its pid into it.
if [ -f "$lock" ]; then
	pid=$(cat "$lock" 2>/dev/null || true)
	held=false
	if command -v flock >/dev/null 2>&1; then
		flock -n "$lock" true || held=true
	elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		held=true
	fi
	if $held; then
		echo "make run: ferry is already running on $dir (pid ${pid:-unknown}); stop it (Ctrl-C in its terminal) before starting another" >&2
		exit 1
	fi
fi

mkdir -p "$dir"
if [ ! -d "$repo/.git" ]; then
	rm -rf "$repo"
	cp -R "$root/examples/python" "$repo"
	mkdir -p "$repo/.ferry"
	cat >"$repo/.ferry/pipeline.yaml" <<'YAML'
# The path of a release: dev and staging take it by themselves, prod
# after two approvals by people other than the commit's author.
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata: {name: demo}
spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - name: prod
    approval: {required: 2}
YAML
	(
		cd "$repo"
		export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
		git init -q -b main
		git -c user.name=ferry-examples -c user.email=examples@ferry.invalid add -A
		git -c user.name=ferry-examples -c user.email=examples@ferry.invalid commit -q -m "the Python example"
	)
fi
# why: secrets made once, kept beside the configuration, never committed
# (.ferry-run/ is ignored), readable by their owner only.
(
umask 077
[ -f "$dir/token" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/token"
[ -f "$dir/reviewer-token" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/reviewer-token"
[ -f "$dir/operator-token" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/operator-token"
[ -f "$dir/webhook-secret" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/webhook-secret"
)
chmod 600 "$dir/token" "$dir/reviewer-token" "$dir/operator-token" "$dir/webhook-secret"
token=$(cat "$dir/token")
reviewer=$(cat "$dir/reviewer-token")
operator=$(cat "$dir/operator-token")

# The configuration is written only when it changes (another LISTEN, say),
# so that its time says when it last did.
cat >"$dir/ferry-serve.yaml.new" <<YAML
# Written by hack/run.sh (make run) when its settings change.
listen: $listen
gateway: $addr
registryListen: $regaddr
dataDir: data
registry: embedded
sources:
- name: demo
  url: demo-repo
  branch: main
  interval: 1s
  webhookSecret: $(cat "$dir/webhook-secret")
environments:
- {name: dev}
- {name: staging}
- {name: prod}
tokens:
- {name: newcomer, token: $token, roles: [admin]}
- {name: reviewer, token: $reviewer, roles: [approver]}
- {name: operator, token: $operator, roles: [approver]}
YAML
if cmp -s "$dir/ferry-serve.yaml.new" "$dir/ferry-serve.yaml"; then
	rm "$dir/ferry-serve.yaml.new"
else
	mv "$dir/ferry-serve.yaml.new" "$dir/ferry-serve.yaml"
fi
chmod 600 "$dir/ferry-serve.yaml" # it holds the tokens

cat <<MSG

ferry serve is starting, watching the repository $repo.

  functions   http://$addr/ENV/hello   (ENV: dev, staging, prod)
  dashboard   http://$listen/   (sign in with a FERRY_TOKEN value below)
  API         http://$listen/api/v1/
  CLI         export FERRY_SERVER=http://$listen FERRY_TOKEN=$token
              (newcomer: deploys, approves, rolls back)
  reviewer    FERRY_TOKEN=$reviewer
              (a second approver: prod takes two approvals)
  operator    FERRY_TOKEN=$operator
              (a third: a promotion newcomer asks for with ferry promote
              needs two approvers besides newcomer)

dev and staging take each release by themselves; prod waits for two
approvals. In another terminal, with the export above (README.md, "The
make run tour", has the rest):

  bin/ferry promotions --env prod                      # prod waits: note the ID
  bin/ferry approve ID                                 # one approval of two
  FERRY_TOKEN=$reviewer bin/ferry approve ID   # two: prod deploys in a moment
  curl http://$addr/prod/hello

Or in a browser: sign in at http://$listen/ with newcomer's token, open
Promotions and Approve; Sign out (top right), sign in with reviewer's
token and Approve again; Environments shows prod change.

MSG
# why: after the first commit the sed below would change nothing, and
# git would refuse the commit it suggests.
if grep -q 'hello from python' "$repo/hello/main.py"; then
	cat <<MSG
Then change the greeting and commit; dev serves it about a second later:

  cd $repo && sed -i 's/hello from python/hello from my commit/' hello/main.py && git -c user.name=me -c user.email=me@example.com commit -qam "greet" && cd -
  curl http://$addr/dev/hello

MSG
else
	cat <<MSG
Then edit $repo/hello/main.py and commit; dev serves it about a second later.

MSG
fi
exec "$ferry" serve --config "$dir/ferry-serve.yaml"
