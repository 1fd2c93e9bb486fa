#!/bin/sh
# node.sh start DIR [REGISTRY...] | node.sh stop DIR
#
# Starts (or stops) a real single-node Kubernetes cluster on loopback, for
# tests that run ferry's images as pods: etcd, kube-apiserver, containerd
# (with runc from Debian), a kubelet, kube-controller-manager and
# kube-scheduler, built by hack/kube.sh into its cache folder. All state is
# under DIR; DIR/kubeconfig is the administrator's kubeconfig. start returns
# when the node is Ready.
#
# REGISTRY (host:port, also FERRY_NODE_REGISTRIES, space-separated) are the
# loopback registries pods pull from over plain HTTP; the first one gets
# the sandbox ("pause") image, which the project builds itself
# (hack/pause) since nothing here can pull the upstream one.
#
# Pods get their own network (the bridge CNI plugin, bridge ferry0,
# 10.244.0.0/24) and are reachable from the host at their pod IP. There is
# no kube-proxy and no DNS: Service IPs do not route.
#
# Only one node runs per machine (the kubelet owns host-wide paths and
# sysctls): start waits for a lock in the cache folder, held by the node's
# processes, so parallel test packages queue. stop kills what start
# started, unmounts what containerd and the kubelet mounted under DIR, and
# puts back what they changed on the host; it also cleans up after a node
# that crashed, even when DIR is gone.
#
# Needs root, runc and the CNI plugins (hack/deps.sh), openssl and go.
# POSIX sh, plus flock and setsid (util-linux) and a sleep that takes
# fractions of a second (coreutils).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
# The bridge and subnet of the pods: a name and a private range nothing
# else on these machines uses.
BRIDGE=ferry0
POD_SUBNET=10.244.0.0/24
SERVICE_RANGE=10.0.0.0/24
# The kubelet refuses a loopback node IP, so the API server reaches it by
# name (kubectl logs, exec, port-forward): a name that resolves to
# 127.0.0.1 everywhere, where the kubelet listens.
NODE_NAME=${FERRY_NODE_NAME:-localhost}
# Sysctls the kubelet sets when protectKernelDefaults is off (its default)
# and the bridge plugin sets for a gateway bridge; stop puts them back.
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward"
# Host folders the kubelet and containerd write to whatever their root
# and state folders are; stop removes the entries the node added.
# (/var/lib/cni/results is libcni's cache of each pod's network; the
# shims' sockets are in /run/containerd/s.)
HOST_DIRS="/var/lib/kubelet/device-plugins /var/log/pods /var/log/containers /var/lib/cni/results /run/containerd/s"

die() {
	echo "node.sh: $*" >&2
	exit 1
}

usage() {
	die "usage: node.sh start DIR [REGISTRY...] | node.sh stop DIR"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
[ "$(id -u)" -eq 0 ] || die "run as root: the kubelet and containerd manage cgroups, mounts and network namespaces"
case "$dir" in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
case "$dir" in
*[!A-Za-z0-9/._-]*) die "DIR $dir: use only letters, digits and / . _ - (mount points are matched by name)" ;;
esac
dir=${dir%/}

bin=$("$root/hack/kube.sh")
runc=$(command -v runc || echo /usr/sbin/runc)
# Records that must outlive DIR (a crashed node's DIR may be gone): the
# host's values before the node changed them, and which DIR runs.
state=$bin/node-state
lock=$bin/node.lock

# statelock takes the lock on the records (descriptor 8): a start must not
# read or write them while a stop that freed the node lock (by killing the
# node's processes) is still undoing that node's changes.
statelock() {
	exec 8>"$bin/node-state.lock"
	flock 8
}

# procs prints the pids of the node's processes: those running a binary
# of the cache folder, runc or the pause binary with DIR on their command
# line (envtest API servers of other tests run the same binaries; their
# command lines do not name DIR).
procs() {
	find /proc -mindepth 2 -maxdepth 2 -name exe \( -lname "$bin/*" -o -lname "$runc" -o -lname "$dir/*" \) 2>/dev/null |
		while read -r exe; do
			p=${exe%/exe}
			[ "${p#/proc/}" = "$$" ] && continue
			if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$dir/"; then
				echo "${p#/proc/}"
			fi
		done
}

# podprocs prints the pids in the kubelet's cgroups: the pods' processes.
podprocs() {
	for c in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
		[ -d "$c" ] || continue
		find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null
		return 0
	done
	return 0
}

# mounts prints the mount points under DIR, deepest first.
mounts() {
	awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

stop_node() {
	# ours: this DIR's node is the one whose host-wide changes are
	# recorded. A second stop of a node, after another node started, must
	# not undo the other's.
	ours=""
	[ "$(cat "$state/dir" 2>/dev/null)" = "$dir" ] && ours=1
	# The control plane and kubelet first, so nothing restarts pods while
	# they are killed; each runs in its own process group.
	daemons="kube-scheduler kube-controller-manager kubelet kube-apiserver etcd containerd"
	for name in $daemons; do
		[ -f "$dir/pids/$name" ] && kill -TERM -- "-$(cat "$dir/pids/$name")" 2>/dev/null || true
	done
	i=0
	for name in $daemons; do
		[ -f "$dir/pids/$name" ] || continue
		while kill -0 "$(cat "$dir/pids/$name")" 2>/dev/null && [ $i -lt 20 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	done
	# What did not stop within 2 s, and the pods' own processes, are killed
	# outright: the runc shims do not stop on SIGTERM (containerd tells
	# them to), and the API server's graceful shutdown waits for etcd,
	# which waits for its clients; nothing of the node is kept anyway.
	i=0
	while :; do
		left="$(procs)"
		[ -n "$ours" ] && left="$left $(podprocs)"
		[ -n "${left# }" ] && [ $i -lt 20 ] || break
		kill -KILL $left 2>/dev/null || true
		sleep 0.2
		i=$((i + 1))
	done
	[ -z "$(procs)" ] || echo "node.sh: still running after SIGKILL: $(procs)" >&2
	# Network namespaces (kept under DIR: netns_mounts_under_state_dir),
	# overlay rootfs, /dev/shm and the kubelet's volumes.
	for m in $(mounts); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "node.sh: cannot unmount $m" >&2
	done
	[ -n "$ours" ] || return 0

	ip link delete "$BRIDGE" 2>/dev/null || true
	# The kubelet's QoS cgroups, empty once the pods are dead.
	for c in /sys/fs/cgroup/*/kubepods; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	[ -f "$state/sysctls" ] && while read -r key value; do
		sysctl -q -w "$key=$value" >/dev/null 2>&1 || echo "node.sh: cannot restore $key=$value" >&2
	done <"$state/sysctls"
	for d in $HOST_DIRS; do
		f=$state/$(echo "$d" | tr / _)
		[ -d "$d" ] || continue
		if [ -f "$f" ]; then
			ls -A "$d" | while read -r e; do
				grep -qxF -- "$e" "$f" || rm -rf "${d:?}/$e"
			done
		else
			# The folder itself is the node's.
			rm -rf "$d"
		fi
	done
	for d in /var/lib/kubelet /var/lib/cni /run/containerd; do
		rmdir "$d" 2>/dev/null || true
	done
	rm -rf "$state"
}

if [ "$cmd" = stop ]; then
	statelock
	stop_node
	exit 0
fi
[ "$cmd" = start ] || usage

regs=${FERRY_NODE_REGISTRIES:-}
[ $# -gt 0 ] && regs="$*"
[ -n "$regs" ] || die "give the loopback registry (host:port) pods pull from: node.sh start DIR REGISTRY"
for t in runc openssl go; do
	command -v $t >/dev/null 2>&1 || die "$t is missing: run hack/deps.sh"
done
[ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing: run hack/deps.sh"

# One node per machine. The lock's descriptor is inherited by the node's
# processes, so it is held exactly as long as any of them runs, and a node
# that crashed frees it. A node whose owner (FERRY_NODE_OWNER: the pid of
# the test process that started it) is gone is stopped here: a test binary
# killed by go test's -timeout runs no cleanup. Waiting is bounded so a
# leaked process shows up as an error, not as a hang.
exec 9>"$lock"
wait=${FERRY_NODE_LOCK_WAIT:-900}
until flock -n 9; do
	owner=$(cat "$state/owner" 2>/dev/null || true)
	old=$(cat "$state/dir" 2>/dev/null || true)
	if [ -n "$owner" ] && [ -n "$old" ] && ! kill -0 "$owner" 2>/dev/null; then
		echo "node.sh: stopping the node of $old: its owner, process $owner, is gone" >&2
		"$0" stop "$old" 9>&-
		continue
	fi
	[ "$wait" -gt 0 ] || die "another node holds $lock; stop it with node.sh stop DIR (DIR is in $state/dir)"
	wait=$((wait - 1))
	sleep 1
done
statelock
# A node that ended without stop left its changes: undo them first.
if [ -f "$state/dir" ]; then
	old=$(cat "$state/dir")
	echo "node.sh: cleaning up after the node of $old" >&2
	(
		dir=$old
		stop_node
	)
fi
# A start that fails, whatever the reason, leaves nothing running (its
# logs stay in DIR).
trap '[ -n "${started:-}" ] || { statelock; stop_node; }' EXIT
mkdir -p "$dir/pids" "$dir/logs" "$dir/pki" "$state"
echo "$dir" >"$state/dir"
echo "${FERRY_NODE_OWNER:-}" >"$state/owner"
: >"$state/sysctls"
for key in $SYSCTLS; do
	v=$(sysctl -n "$key" 2>/dev/null) || continue
	echo "$key $v" >>"$state/sysctls"
done
for d in $HOST_DIRS; do
	[ -d "$d" ] && ls -A "$d" >"$state/$(echo "$d" | tr / _)"
done
# The records are written; the node's processes must not hold this lock.
exec 8>&-

# freeport prints a TCP port nothing listens on, below the ephemeral
# range (32768-60999), where envtest and clients take theirs.
freeport() {
	while :; do
		p=$(($(od -An -N2 -tu2 /dev/urandom) % 12000 + 20000))
		hex=$(printf ':%04X ' "$p")
		grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || {
			echo "$p"
			return
		}
	done
}
etcd_port=$(freeport)
peer_port=$(freeport)
api_port=$(freeport)
kubelet_port=$(freeport)
api=https://127.0.0.1:$api_port

# Certificates: a CA, the API server's serving certificate, and a client
# certificate per user. ECDSA keys: RSA key generation takes seconds on a
# busy machine.
pki=$dir/pki
ossl() { openssl "$@" 2>/dev/null; }
ossl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key"
ossl req -x509 -new -key "$pki/ca.key" -subj /CN=ferry-node-ca -days 30 -out "$pki/ca.crt"
# cert NAME SUBJECT [SAN]
cert() {
	ossl ecparam -name prime256v1 -genkey -noout -out "$pki/$1.key"
	ossl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
	ext=$pki/$1.ext
	echo "extendedKeyUsage=serverAuth,clientAuth" >"$ext"
	[ -n "${3:-}" ] && echo "subjectAltName=$3" >>"$ext"
	ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 -extfile "$ext" -out "$pki/$1.crt"
}
# 10.0.0.1 is the first address of SERVICE_RANGE: pods reach the API
# server as the kubernetes Service.
cert apiserver /CN=kube-apiserver "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
cert admin "/O=system:masters/CN=ferry-admin"
cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
# The Node authorizer and NodeRestriction admit a kubelet by this name.
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
ossl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key"
ossl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# kubeconfig USER FILE
kubeconfig() {
	cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: "$api", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}
contexts:
- name: node
  context: {cluster: node, user: $1}
current-context: node
EOF
}
for u in admin kubelet controller-manager scheduler; do
	kubeconfig "$u" "$dir/$u.kubeconfig"
done

# run NAME ARGS...: starts a daemon in its own session (so stop can kill
# its process group, and a test's signals do not reach it), logging to
# DIR/logs/NAME.log.
run() {
	name=$1
	shift
	setsid "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/pids/$name"
}

# waitfor WHAT SECONDS COMMAND...: polls COMMAND until it succeeds.
waitfor() {
	what=$1
	n=$(($2 * 5))
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || die "$what did not come up; its log is in $dir/logs"
		sleep 0.2
	done
}

# The sandbox image, built and pushed while etcd and the API server start.
first=${regs%% *}
mkdir -p "$dir/bin"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/bin/pause" ./hack/pause &&
	go build -o "$dir/bin/push" ./hack/pause/push) || die "building hack/pause failed"
pause=$("$dir/bin/push" -binary "$dir/bin/pause" -repo "$first/ferry/pause") || die "pushing the pause image to $first failed"
# Tests may run it as a pod that does nothing.
echo "$pause" >"$dir/pause-image"

# --unsafe-no-fsync: a test cluster's data is thrown away; fsync on a busy
# shared disk makes every write slow.
run etcd "$bin/etcd" --name node --data-dir "$dir/etcd" \
	--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
	--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
	--initial-cluster "node=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn

# --endpoint-reconciler-type=none: the default reconciler writes the
# kubernetes Service's endpoints with the advertise address and refuses
# loopback. Hostname first: the node's InternalIP is the host's outward
# address, where the kubelet does not listen; its name resolves to
# 127.0.0.1.
run kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
	--endpoint-reconciler-type=none \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--client-ca-file "$pki/ca.crt" \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--service-account-issuer https://kubernetes.default.svc \
	--service-cluster-ip-range "$SERVICE_RANGE" \
	--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
	--kubelet-client-certificate "$pki/apiserver-kubelet.crt" --kubelet-client-key "$pki/apiserver-kubelet.key" \
	--kubelet-preferred-address-types Hostname,InternalIP \
	--cert-dir "$dir/apiserver"

# containerd, with everything it keeps under DIR.
mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/certs.d"
for r in $regs; do
	mkdir -p "$dir/certs.d/$r"
	cat >"$dir/certs.d/$r/hosts.toml" <<EOF
# The loopback registry speaks plain HTTP.
server = "http://$r"
[host."http://$r"]
  capabilities = ["pull", "resolve"]
EOF
done
cat >"$dir/cni/net.d/10-ferry.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ferry",
  "plugins": [{
    "type": "bridge",
    "bridge": "$BRIDGE",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "$POD_SUBNET"}]],
      "dataDir": "$dir/cni/ipam"
    }
  }]
}
EOF
cat >"$dir/containerd.toml" <<EOF
version = 3
root = "$dir/containerd/root"
state = "$dir/containerd/state"
# NRI is off: nothing here uses it, and it would listen on a host-wide
# socket in /var/run/nri.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$dir/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    # The project's own pause image, by digest (hack/pause).
    sandbox = "$pause"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$dir/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  # These machines lack CAP_SYS_RESOURCE: runc cannot lower a process's
  # oom_score_adj, and every sandbox fails with "can't get final child's
  # PID from pipe" unless the score is never set below containerd's own.
  restrict_oom_score_adj = true
  # Network namespaces under DIR, not /var/run/netns, so stop finds them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$dir/cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      # The kubelet uses cgroupfs: no systemd manages these machines' cgroups.
      SystemdCgroup = false
      BinaryName = "$runc"
      # runc's state under DIR, not /run/containerd/runc.
      Root = "$dir/runc"
EOF
# PATH: containerd finds its shim there.
run containerd env PATH="$bin:$PATH" "$bin/containerd" --config "$dir/containerd.toml"

cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# No systemd manages these machines' cgroups.
cgroupDriver: cgroupfs
# These machines may have swap, and cgroups in hybrid (v1) mode.
failSwapOn: false
failCgroupV1: false
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
# 0: no separate health port to collide with another process's.
healthzPort: 0
containerRuntimeEndpoint: unix://$dir/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
# A shared test machine's disk is often fuller than the default
# thresholds; a test pod must not be evicted for it.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
waitfor containerd 60 test -S "$dir/containerd.sock"
waitfor kube-apiserver 120 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz
run kubelet "$bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
	--root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
	--hostname-override "$NODE_NAME"

# --use-service-account-credentials: each controller acts as its own
# ServiceAccount, which the bootstrap RBAC roles are written for.
# --secure-port 0: no metrics endpoint to collide with another's.
run kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
	--use-service-account-credentials \
	--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
	--cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
	--leader-elect=false --secure-port 0
run kube-scheduler "$bin/kube-scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
	--leader-elect=false --secure-port 0

cp "$dir/admin.kubeconfig" "$dir/kubeconfig"
kc() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
waitfor "the node $NODE_NAME (kubelet)" 120 kc get node "$NODE_NAME"
waitfor "the node's Ready condition" 120 kc wait --for=condition=Ready --timeout=1s node "$NODE_NAME"
# Pods are admitted only once the namespace has its default
# ServiceAccount, made by the controller-manager.
waitfor "the default ServiceAccount (controller-manager)" 60 kc get serviceaccount default
started=1
echo "$dir/kubeconfig"
