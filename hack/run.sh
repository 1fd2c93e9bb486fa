#!/bin/sh
# run.sh: what `make run` runs. The first time, it makes a Git repository
# from examples/python (the demo a newcomer commits to) and a ferry serve
# configuration that watches it, both under .ferry-run/; every time, it
# prints the URLs and the one commit that shows a deploy, then runs
# ferry serve in the foreground. Nothing outside .ferry-run/ is touched.
#
# Environment: FERRY (the binary, default bin/ferry), LISTEN (API,
# default 127.0.0.1:8080), ADDR (gateway, default 127.0.0.1:8081),
# REGISTRY_ADDR (embedded registry, default 127.0.0.1:8082).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
ferry=${FERRY:-$root/bin/ferry}
listen=${LISTEN:-127.0.0.1:8080}
addr=${ADDR:-127.0.0.1:8081}
regaddr=${REGISTRY_ADDR:-127.0.0.1:8082}
dir=$root/.ferry-run
repo=$dir/demo-repo

mkdir -p "$dir"
if [ ! -d "$repo/.git" ]; then
	rm -rf "$repo"
	cp -R "$root/examples/python" "$repo"
	(
		cd "$repo"
		export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
		git init -q -b main
		git -c user.name=ferry-examples -c user.email=examples@ferry.invalid add -A
		git -c user.name=ferry-examples -c user.email=examples@ferry.invalid commit -q -m "the Python example"
	)
fi
# why: secrets made once, kept beside the configuration, never committed
# (.ferry-run/ is ignored).
[ -f "$dir/token" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/token"
[ -f "$dir/webhook-secret" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/webhook-secret"
token=$(cat "$dir/token")

cat >"$dir/ferry-serve.yaml" <<YAML
# Written by hack/run.sh (make run) on every start.
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
YAML

cat <<MSG

ferry serve is starting, watching the repository .ferry-run/demo-repo.

  functions   http://$addr/dev/hello         (dev gets every new commit)
  API         http://$listen/api/v1/
  CLI         export FERRY_SERVER=http://$listen FERRY_TOKEN=$token
              bin/ferry status; bin/ferry runs; bin/ferry runs logs 1 -f

To see a deploy, change the greeting and commit, in another terminal:

  cd .ferry-run/demo-repo && sed -i 's/hello from python/hello from my commit/' hello/main.py && git -c user.name=me -c user.email=me@example.com commit -qam "greet" && cd -
  curl http://$addr/dev/hello

dev and staging take each release by themselves; prod waits for an
approval (bin/ferry promotions, then bin/ferry approve ID). bin/ferry
rollback dev puts dev back on the release before, by digest (prod, once
it has run two releases), and holds it until bin/ferry resume dev.

MSG
exec "$ferry" serve --config "$dir/ferry-serve.yaml"
