#!/bin/sh
# deps.sh [bench]: make sure the host programs the tests run are present:
# git (the tests build repositories), python3 and node (the examples' own
# tests, and the interpreters of scratch images), bubblewrap and setpriv
# (the sandbox repository code runs in), runc and the CNI plugins (the
# single-node cluster of hack/node.sh: containerd runs pods with runc and
# wires their network with the bridge plugin), chromium and a font (the
# dashboard's tests drive a headless browser; without a font its
# screenshots have no text); with "bench", also nginx, the gateway
# benchmark's peer. The sandbox looks interpreters up on a fixed
# system PATH, so python3 and node must be there, not only on this shell's
# PATH (a pyenv or nvm shim is not enough).
# Installs what is missing with apt-get on a Debian machine; does nothing
# when everything is there, so it is cheap to run every time.
set -eu
missing=""
command -v git >/dev/null 2>&1 || missing="$missing git"
onsystem() {
	for d in /usr/local/bin /usr/bin /bin; do
		[ -x "$d/$1" ] && return 0
	done
	return 1
}
onsystem python3 || missing="$missing python3"
onsystem node || missing="$missing nodejs"
onsystem bwrap || missing="$missing bubblewrap"
onsystem setpriv || missing="$missing util-linux"
onsystem runc || missing="$missing runc"
[ -x /usr/lib/cni/bridge ] || missing="$missing containernetworking-plugins"
# why: FERRY_CHROMIUM names another browser, which the tests then use.
if [ -z "${FERRY_CHROMIUM:-}" ]; then
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$missing chromium"
fi
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$missing fonts-dejavu-core"
if [ "${1:-}" = bench ]; then
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
fi
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing:$missing; install them with your package manager" >&2
	exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps.sh: installing$missing" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
