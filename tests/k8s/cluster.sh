#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the end-to-end tests and for
# trying the chart by hand: the control plane of controlplane.sh (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler), a node (kubelet and kube-proxy built from the
# same k8s.io/kubernetes, Debian's containerd, runc and CNI plugins), CoreDNS and
# local-path-provisioner as pods, the subnetlab images built without Docker
# (tests/k8s/image.sh), and the chart installed with them.
#
#   cluster.sh up       build what is missing (cached under ~/.cache/subnetlab), start
#                       everything, install the chart, wait until the operator, the ledger
#                       and Redis are Ready; the last two lines printed are
#                         export KUBECONFIG=PATH
#                         export SUBNETLAB_LEDGER=URL
#                       A second `up` on a running cluster prints them again and changes
#                       nothing. A failed `up` tears down what it started.
#   cluster.sh down     stop every process `up` started and remove its mounts, network
#                       namespaces, interfaces, iptables rules, cgroups and state; restores
#                       the sysctls the node changed. Safe to repeat.
#   cluster.sh build    build (or reuse) the binaries and images `up` needs, start nothing
#   cluster.sh status   one line: up (with the exports) or down; exit 0 / 3
#   cluster.sh env      the two export lines of a running cluster (exit 3 when down)
#   cluster.sh load NAME...
#                       build the image.sh images NAME (those `up` does not load: vllm)
#                       and import them into the running node; prints each IMAGE_REF
#                       (exit 3 when down)
#
# Networking: pods get addresses in POD_CIDR on the bridge subnetlab0 (the node's address,
# NODE_IP, is the bridge's); Services in 10.0.0.0/24. Nothing is masqueraded to the outside
# and a FORWARD rule drops whatever a pod sends anywhere but the bridge: no packet leaves
# this machine. The ledger is reachable from the host at http://127.0.0.1:LEDGER_NODE_PORT.
#
# Environment: SUBNETLAB_CLUSTER_DIR (state, default /var/lib/subnetlab-cluster),
# SUBNETLAB_CLUSTER_POD_CIDR (10.88.0.0/16), SUBNETLAB_CLUSTER_LEDGER_PORT (NodePort of
# the ledger, 30944), SUBNETLAB_CLUSTER_BLOCK_TIME (seconds per block, 0.5), and
# SUBNETLAB_CLUSTER_HELM_ARGS (extra `helm upgrade --install` arguments, word-split),
# SUBNETLAB_CLUSTER_KEEP_FAILED=1 (a failed `up` is left as it is, to look at).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE="${SUBNETLAB_CLUSTER_DIR:-/var/lib/subnetlab-cluster}"
RUN="$STATE/run"
POD_CIDR="${SUBNETLAB_CLUSTER_POD_CIDR:-10.88.0.0/16}"
SERVICE_CIDR=10.0.0.0/24  # controlplane.sh's --service-cluster-ip-range
DNS_IP=10.0.0.10
CLUSTER_DOMAIN=cluster.local
BRIDGE=subnetlab0
LEDGER_NODE_PORT="${SUBNETLAB_CLUSTER_LEDGER_PORT:-30944}"  # chart value ledger.service.nodePort
BLOCK_TIME="${SUBNETLAB_CLUSTER_BLOCK_TIME:-0.5}"
RELEASE=subnetlab
RELEASE_NS=subnetlab
FWD_CHAIN=SUBNETLAB-NODE-FORWARD
# The sysctls the node changes (the bridge plugin, kube-proxy and the kubelet); `down` puts
# back the values recorded by `up`.
# Paths outside the state dir that the kubelet, containerd and the CNI plugins write to
# whatever they are told; `down` removes those that did not exist before `up`.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /etc/cni
  /run/containerd /var/run/netns /run/netns)
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.ipv4.conf.all.route_localnet
  vm.overcommit_memory kernel.panic kernel.panic_on_oops)

die() { echo "cluster.sh: error: $*" >&2; exit 2; }
say() { echo "cluster.sh: $*" >&2; }

# POD_CIDR's first address: the bridge's, the pods' gateway and the node's InternalIP.
node_ip() {
  local base="${POD_CIDR%/*}"
  echo "${base%.*}.$((${base##*.} + 1))"
}
NODE_IP="$(node_ip)"

kubectl_() { "$BIN/kubectl" --kubeconfig="$RUN/cp/kubeconfig" "$@"; }

# ---- preflight: everything `up` needs, each missing piece named in one line ---------------
preflight() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it starts containerd, a kubelet and pod networking)"
  local c
  for c in containerd containerd-shim-runc-v2 ctr runc iptables iptables-save iptables-restore \
    ip conntrack openssl curl flock sha256sum; do
    command -v "$c" >/dev/null || die "$c: not found (apt-get install containerd runc iptables iproute2 conntrack openssl curl)"
  done
  for c in bridge host-local loopback portmap; do
    [ -x "/usr/lib/cni/$c" ] || die "/usr/lib/cni/$c: missing (apt-get install containernetworking-plugins)"
  done
  command -v "${ETCD:-etcd}" >/dev/null || die "etcd: not found (apt-get install etcd-server)"
  grep -qw overlay /proc/filesystems || die "kernel: no overlay file system (containerd's overlayfs snapshotter needs it)"
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] \
    || die "kernel: no br_netfilter (/proc/sys/net/bridge missing): Services between pods need it"
  [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] \
    || die "kernel: no cgroup file system at /sys/fs/cgroup"
  ip netns list >/dev/null 2>&1 || die "kernel: network namespaces unavailable (ip netns list failed)"
  [[ "$POD_CIDR" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.0/(1[6-9]|2[0-4])$ ]] \
    || die "SUBNETLAB_CLUSTER_POD_CIDR: '$POD_CIDR' must be an IPv4 network x.y.z.0/16 to /24"
  if ! [[ "$LEDGER_NODE_PORT" =~ ^[0-9]+$ ]] || [ "$LEDGER_NODE_PORT" -lt 30000 ] \
    || [ "$LEDGER_NODE_PORT" -gt 32767 ]; then
    die "SUBNETLAB_CLUSTER_LEDGER_PORT: '$LEDGER_NODE_PORT' must be a NodePort in 30000-32767"
  fi
  [[ "$BLOCK_TIME" =~ ^[0-9]+(\.[0-9]+)?$ ]] \
    || die "SUBNETLAB_CLUSTER_BLOCK_TIME: '$BLOCK_TIME' must be a number of seconds"
  if ip route show | grep -q "^${POD_CIDR%/*}" && ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    die "SUBNETLAB_CLUSTER_POD_CIDR: $POD_CIDR is already routed on this machine; choose another"
  fi
}

# ---- process bookkeeping: one pid file per daemon under $RUN ------------------------------
start_daemon() {  # start_daemon NAME LOG COMMAND...
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

stop_daemon() {  # stop_daemon NAME: TERM, up to 10 s, then KILL (the whole session)
  local pidfile="$RUN/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

wait_until() {  # wait_until WHAT SECONDS LOG CHECK...: poll; a dead daemon or the deadline fails
  local what="$1" limit="$2" log="$3" deadline=$((SECONDS + $2)) d
  shift 3
  until "$@" >/dev/null 2>&1; do
    for d in containerd controlplane kubelet kube-proxy; do
      if [ -f "$RUN/$d.pid" ] && ! alive "$d"; then
        die "$what: $d exited; last lines of $RUN/$d.log:
$(tail -n 15 "$RUN/$d.log" 2>/dev/null)"
      fi
    done
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not ready after ${limit} s; last lines of $log:
$(tail -n 15 "$log" 2>/dev/null)"
    sleep 0.5
  done
}

# ---- host networking ---------------------------------------------------------------------
record_host_state() {
  local s
  : >"$STATE/sysctl.before"
  for s in "${SYSCTLS[@]}"; do
    echo "$s=$(sysctl -n "$s" 2>/dev/null || echo '')" >>"$STATE/sysctl.before"
  done
  # The cgroups that exist now: `down` removes only those the node added.
  find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort >"$STATE/cgroups.before" || true
  local path
  : >"$STATE/paths.before"
  for path in "${HOST_PATHS[@]}"; do
    if [ -e "$path" ]; then echo "$path" >>"$STATE/paths.before"; fi
  done
  return 0
}

setup_network() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service addresses that kube-proxy does not translate stay on the bridge, never the
  # default route.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # Pods talk to pods, Services and the node; whatever else they send is dropped here.
  iptables -N "$FWD_CHAIN" 2>/dev/null || iptables -F "$FWD_CHAIN"
  iptables -A "$FWD_CHAIN" -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
  iptables -C FORWARD -j "$FWD_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -j "$FWD_CHAIN"
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam"
  cat >"$STATE/cni/net.d/10-subnetlab.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "subnetlab",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ---- containerd, the control plane, the node ----------------------------------------------
start_containerd() {
  mkdir -p "$STATE/containerd" "$RUN/containerd" "$RUN/runc"
  cat >"$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj (MACHINE-NOTES.md)
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  start_daemon containerd "$RUN/containerd.log" containerd --config "$STATE/containerd.toml"
  wait_until containerd 60 "$RUN/containerd.log" ctr -a "$RUN/containerd.sock" version
}

start_node() {
  local node
  node="$(hostname | tr '[:upper:]' '[:lower:]')"
  # Pods resolve through CoreDNS only; the host's resolvers are never handed to a pod.
  : >"$STATE/resolv.conf"
  mkdir -p "$STATE/kubelet"
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {clientCAFile: "$RUN/cp/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: "unix://$RUN/containerd.sock"
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
clusterDNS: ["$DNS_IP"]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: "$STATE/resolv.conf"
maxPods: 250
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
podLogsDir: "$STATE/pod-logs"
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF
  start_daemon kubelet "$RUN/kubelet.log" "$BIN/kubelet" --config="$STATE/kubelet.yaml" \
    --kubeconfig="$RUN/cp/$node-kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
    --cert-dir="$STATE/kubelet/pki" \
    --node-ip="$NODE_IP" --hostname-override="$node" --v=1
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$RUN/cp/kube-proxy.kubeconfig"}
hostnameOverride: $node
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["127.0.0.0/8", "$NODE_IP/32"]
# masquerade Service traffic, so that a pod's reply to another pod on the same bridge
# goes back through the node, where conntrack undoes the translation
iptables: {masqueradeAll: true}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start_daemon kube-proxy "$RUN/kube-proxy.log" "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml" --v=1
  wait_until "node $node Ready" 180 "$RUN/kubelet.log" node_ready "$node"
}

node_ready() {
  [ "$(kubectl_ get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

apply_addons() {
  sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" -e "s|@LOCAL_PATH_IMAGE@|$LOCAL_PATH_IMAGE|g" \
    -e "s|@BUSYBOX_IMAGE@|$BUSYBOX_IMAGE|g" -e "s|@DNS_IP@|$DNS_IP|g" \
    -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@VOLUME_DIR@|$STATE/volumes|g" \
    "$HERE/node/addons.yaml" | kubectl_ apply -f - >/dev/null
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null \
    || die "CoreDNS did not become Ready (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
  kubectl_ -n local-path-storage rollout status deployment/local-path-provisioner --timeout=180s \
    >/dev/null || die "local-path-provisioner did not become Ready"
}

install_chart() {
  local version extra=()
  version="$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/helm/subnetlab/Chart.yaml")"
  # shellcheck disable=SC2206 # word splitting is the documented interface
  [ -n "${SUBNETLAB_CLUSTER_HELM_ARGS:-}" ] && extra=($SUBNETLAB_CLUSTER_HELM_ARGS)
  "$BIN/helm" --kubeconfig="$RUN/cp/kubeconfig" upgrade --install "$RELEASE" "$REPO/helm/subnetlab" \
    --namespace "$RELEASE_NS" --create-namespace \
    --set image.repository="${SUBNETLAB_IMAGE%:*}" --set-string image.tag="${SUBNETLAB_IMAGE##*:}" \
    --set image.pullPolicy=Never \
    --set redis.image.repository="${REDIS_IMAGE%:*}" --set-string redis.image.tag="${REDIS_IMAGE##*:}" \
    --set redis.image.pullPolicy=Never \
    --set-json ledger.blockTime="$BLOCK_TIME" --set ledger.service.type=NodePort \
    --set ledger.service.nodePort="$LEDGER_NODE_PORT" \
    --set operator.syncIntervalSeconds=5 "${extra[@]}" >"$RUN/helm.log" 2>&1 \
    || die "helm upgrade --install failed: $(tail -n 5 "$RUN/helm.log")"
  [ "${version}" = "${SUBNETLAB_IMAGE##*:}" ] || say "note: the image tag ${SUBNETLAB_IMAGE##*:} is not the chart's appVersion $version"
  local what
  for what in statefulset/$RELEASE-redis deployment/$RELEASE-ledger deployment/$RELEASE-operator; do
    kubectl_ -n "$RELEASE_NS" rollout status "$what" --timeout=300s >/dev/null 2>&1 \
      || die "$what did not become Ready: $(kubectl_ -n "$RELEASE_NS" get pods --no-headers 2>&1 | tr '\n' ';')"
  done
  wait_until "ledger at http://127.0.0.1:$LEDGER_NODE_PORT" 60 "$RUN/helm.log" \
    curl -sf "http://127.0.0.1:$LEDGER_NODE_PORT/readyz"
}

print_env() {
  echo "export KUBECONFIG=$RUN/cp/kubeconfig"
  echo "export SUBNETLAB_LEDGER=http://127.0.0.1:$LEDGER_NODE_PORT"
}

is_up() {
  [ -f "$STATE/up" ] && alive containerd && alive controlplane && alive kubelet \
    && alive kube-proxy && [ -f "$RUN/cp/ready" ]
}

# ---- building what is missing ------------------------------------------------------------
build_all() {
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
  BIN="$(bash "$HERE/controlplane.sh" build)" || die "building the Kubernetes binaries failed"
  local b
  for b in kubelet kube-proxy kube-scheduler coredns local-path-provisioner helm kubectl; do
    [ -x "$BIN/$b" ] || die "$BIN/$b: missing after controlplane.sh build"
  done
  local refs
  refs="$(bash "$HERE/image.sh" build \
    --binary "coredns:$(binary_tag "$BIN/coredns")=$BIN/coredns" \
    --binary "local-path-provisioner:$(binary_tag "$BIN/local-path-provisioner")=$BIN/local-path-provisioner")" \
    || die "building the images failed (tests/k8s/image.sh build)"
  image_ref() { awk -v pat="$1" '$1 ~ pat {print $1; exit}' <<<"$refs"; }
  SUBNETLAB_IMAGE="$(image_ref '^(docker.io/library/)?subnetlab:')"
  PAUSE_IMAGE="$(image_ref 'subnetlab-pause:')"
  REDIS_IMAGE="$(image_ref 'subnetlab-redis:')"
  BUSYBOX_IMAGE="$(image_ref 'subnetlab-busybox:')"
  COREDNS_IMAGE="$(image_ref '/coredns:')"
  LOCAL_PATH_IMAGE="$(image_ref '/local-path-provisioner:')"
  local v
  for v in SUBNETLAB_IMAGE PAUSE_IMAGE REDIS_IMAGE BUSYBOX_IMAGE COREDNS_IMAGE LOCAL_PATH_IMAGE; do
    [ -n "${!v}" ] || die "image.sh build did not report the image for $v; it printed: $refs"
  done
}

binary_tag() { sha256sum "$1" | cut -c1-12; }

on_up_exit() {  # the EXIT trap while `up` runs: a failure leaves nothing started
  if [ "$1" != 0 ] && [ "${SUBNETLAB_CLUSTER_KEEP_FAILED:-}" = 1 ]; then
    say "up failed; SUBNETLAB_CLUSTER_KEEP_FAILED=1 keeps it for a look ('$0 down' removes it)"
  elif [ "$1" != 0 ]; then
    say "up failed; tearing down what it started"
    cmd_down
  fi
}

cmd_up() {
  preflight
  if is_up; then
    say "already up (state in $STATE)"
    print_env
    return 0
  fi
  [ -e "$STATE/run" ] && { say "cleaning up a previous cluster that is not fully running"; cmd_down; }
  local t0=$SECONDS
  build_all
  mkdir -p "$STATE" "$RUN" "$STATE/volumes"
  # From here on a failure tears down everything, never a half-started cluster.
  trap 'on_up_exit $?' EXIT
  record_host_state
  setup_network
  say "starting containerd"
  start_containerd
  say "importing images"
  bash "$HERE/image.sh" import "$RUN/containerd.sock" >/dev/null \
    || die "importing the images into containerd failed"
  say "starting the control plane"
  start_daemon controlplane "$RUN/controlplane.log" bash "$HERE/controlplane.sh" run "$RUN/cp" \
    --address "$NODE_IP" --node "$(hostname | tr '[:upper:]' '[:lower:]')"
  wait_until "control plane" 300 "$RUN/controlplane.log" test -f "$RUN/cp/ready"
  say "starting the node (kubelet, kube-proxy)"
  start_node
  say "cluster add-ons: CoreDNS, local-path-provisioner"
  apply_addons
  say "installing the chart (release $RELEASE in namespace $RELEASE_NS)"
  install_chart
  touch "$STATE/up"
  trap - EXIT
  say "up in $((SECONDS - t0)) s"
  print_env
}

# ---- teardown ----------------------------------------------------------------------------
cleanup_iptables() {  # drop every KUBE-*, CNI-* and our own chain, and the rules using them
  local save restore table
  for save in iptables-save ip6tables-save; do
    restore="${save/-save/-restore}"
    command -v "$save" >/dev/null || continue
    for table in filter nat mangle raw; do
      "$save" -t "$table" >/dev/null 2>&1 || continue
      "$save" -t "$table" | grep -vE '(KUBE-|CNI-|SUBNETLAB-)' | "$restore" -T "$table" 2>/dev/null \
        || say "warning: could not clean the $table table ($restore)"
    done
  done
}

cleanup_mounts() {  # unmount everything below the state dir and the kubelet's pod dirs, deepest first
  local m
  awk '{print $2}' /proc/self/mounts | grep -E "^($STATE|/run/containerd|/run/netns|/var/run/netns)(/|$)" \
    | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "warning: could not unmount $m"
    done
}

cleanup_containers() {  # the runc containers of our shims, then the shims themselves
  local root id pid
  # containerd's runc shim keeps each namespace's containers in Root/NAMESPACE/ID
  for root in "$RUN"/runc/*/; do
    [ -d "$root" ] || continue
    for id in "$root"*/; do
      if [ -d "$id" ]; then runc --root "${root%/}" delete --force "$(basename "$id")" >/dev/null 2>&1; fi
    done
  done
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $RUN/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

cleanup_netns() {  # the pods' network namespaces (containerd names them cni-*)
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do
    ip netns delete "$ns" 2>/dev/null || say "warning: could not delete network namespace $ns"
  done
}

cleanup_cgroups() {  # cgroups that did not exist before `up`, deepest first
  [ -f "$STATE/cgroups.before" ] || return 0
  find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort | comm -13 "$STATE/cgroups.before" - \
    | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- | while read -r d; do
      rmdir "$d" 2>/dev/null || true
    done
}

remove_host_paths() {  # what `up` brought into being outside the state dir
  [ -f "$STATE/paths.before" ] || return 0
  local path
  for path in "${HOST_PATHS[@]}"; do
    grep -qxF "$path" "$STATE/paths.before" && continue
    if [ -e "$path" ] && ! awk '{print $2}' /proc/self/mounts | grep -qE "^$path(/|$)"; then
      rm -rf "$path"
    fi
  done
}

restore_sysctls() {
  [ -f "$STATE/sysctl.before" ] || return 0
  local line key value
  while IFS= read -r line; do
    key="${line%%=*}" value="${line#*=}"
    if [ -n "$value" ]; then sysctl -qw "$key=$value" 2>/dev/null || true; fi
  done <"$STATE/sysctl.before"
}

cmd_down() {
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  if [ ! -d "$STATE" ]; then say "nothing to stop"; return 0; fi
  trap - EXIT
  # Best effort from here: one step failing must not keep the others from cleaning up.
  set +e
  local d
  for d in kube-proxy kubelet controlplane; do stop_daemon "$d"; done
  # kube-proxy's own cleanup knows its chains best; the sweep below catches the rest.
  if [ -x "${BIN:-}/kube-proxy" ]; then "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  cleanup_containers
  stop_daemon containerd
  cleanup_containers
  cleanup_netns
  cleanup_mounts
  cleanup_iptables
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  # veth ends left behind by a pod whose namespace is gone
  for d in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link show "$d" 2>/dev/null | grep -q "master $BRIDGE" && ip link delete "$d"
  done
  cleanup_cgroups
  restore_sysctls
  remove_host_paths
  # Keep the image store (containerd's content, a cache); everything else goes.
  find "$STATE" -mindepth 1 -maxdepth 1 ! -name containerd -exec rm -rf {} + 2>/dev/null || true
  if awk '{print $2}' /proc/self/mounts | grep -qE "^$STATE(/|$)"; then
    say "warning: mounts remain below $STATE"
  fi
  set -e
  say "down"
}

cmd_load() {  # build and import image.sh images that `up` leaves out (e.g. vllm)
  [ $# -gt 0 ] || die "load: name the images (tests/k8s/image.sh NAMEs, e.g. vllm)"
  is_up || { echo "cluster.sh: not up" >&2; exit 3; }
  local refs
  refs="$(bash "$HERE/image.sh" build "$@")" || die "building $* failed (tests/k8s/image.sh build $*)"
  bash "$HERE/image.sh" import "$RUN/containerd.sock" "$@" >/dev/null \
    || die "importing $* into the node's containerd failed"
  awk '{print $1}' <<<"$refs"
}

cmd_status() {
  if is_up; then echo "up"; print_env; else echo "down"; return 3; fi
}

BIN="$(bash "$HERE/controlplane.sh" bin-dir 2>/dev/null || true)"
case "${1:-}" in
  up) shift; [ $# -eq 0 ] || die "up: takes no arguments, got '$*'"; cmd_up ;;
  build) shift; [ $# -eq 0 ] || die "build: takes no arguments, got '$*'"; build_all ;;
  down) shift; [ $# -eq 0 ] || die "down: takes no arguments, got '$*'"; cmd_down ;;
  status) shift; cmd_status ;;
  env) shift; is_up || { echo "cluster.sh: not up" >&2; exit 3; }; print_env ;;
  load) shift; cmd_load "$@" ;;
  "") die "a command is required: up, down, build, status, env or load" ;;
  *) die "unknown command '$1' (expected up, down, build, status, env or load)" ;;
esac
