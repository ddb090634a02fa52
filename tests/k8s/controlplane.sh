#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the tests: etcd (Debian's etcd-server),
# kube-apiserver, kube-controller-manager and kubectl built from source through the Go module
# proxy (tests/k8s/go.mod pins k8s.io/kubernetes and every staging module), started the way
# controller-runtime's envtest does. No kubelet and no scheduler: Pods stay Pending.
# The same build puts helm (tests/k8s/helmtool/go.mod pins helm.sh/helm/v3) in the bin dir,
# for the chart tests.
#
#   controlplane.sh build                 build the binaries and helm, or reuse the cache;
#                                         prints the bin dir
#   controlplane.sh bin-dir               print the bin dir of the pinned version (builds nothing)
#   controlplane.sh prune                 delete the Go module and build caches, keep the binaries
#   controlplane.sh run DIR [--watch-pid PID]
#                                         start everything with state under DIR (empty or new),
#                                         write DIR/kubeconfig and DIR/ready, then wait; SIGTERM,
#                                         SIGINT or the end of PID stops every process it started
#
# Environment: SUBNETLAB_K8S_CACHE (default ~/.cache/subnetlab/k8s), SUBNETLAB_K8S_GOTOOLCHAIN
# (default "local": the installed go), ETCD (default: etcd on PATH).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_MOD="$HERE/helmtool"
CACHE="${SUBNETLAB_K8S_CACHE:-$HOME/.cache/subnetlab/k8s}"
COMMANDS=(kube-apiserver kube-controller-manager kubectl)
# -checklinkname=0: k8s 1.30's dependencies pull runtime symbols with //go:linkname, which
# the linker refuses since Go 1.23 unless told otherwise. The -X flags stamp the version the
# way hack/lib/version.sh does (else /version says v0.0.0 and Helm's kubeVersion checks fail).
ldflags() {  # ldflags K8S_VERSION GO_VERSION (e.g. v1.30.14 go1.26.8)
  local v="${1#v}" go_minor flags='-s -w' pkg key val
  go_minor="$(echo "$2" | sed -E 's/^go1\.([0-9]+).*/\1/')"
  if ! [[ "$go_minor" =~ ^[0-9]+$ ]] || [ "$go_minor" -ge 23 ]; then
    flags+=' -checklinkname=0'
  fi
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for key in gitVersion=v$v gitMajor=${v%%.*} gitMinor=$(echo "$v" | cut -d. -f2) \
      gitTreeState=clean buildDate=1970-01-01T00:00:00Z; do
      val="${key#*=}" key="${key%%=*}"
      flags+=" -X $pkg.$key=$val"
    done
  done
  echo "$flags"
}

die() { echo "controlplane.sh: error: $*" >&2; exit 2; }
say() { echo "controlplane.sh: $*" >&2; }

k8s_version() {
  local v
  v="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$HERE/go.mod")"
  [ -n "$v" ] || die "go.mod: no 'require k8s.io/kubernetes vX.Y.Z' line in $HERE/go.mod"
  echo "$v"
}

bin_dir() {
  local version
  version="$(k8s_version)"  # a separate assignment, so that its failure stops the script
  echo "$CACHE/$version/bin"
}

# What the binaries were built from: a different go.mod, go.sum, Go or flags rebuilds.
build_stamp() {  # build_stamp GO_VERSION LDFLAGS
  { cat "$HERE/go.mod" "$HERE/go.sum"; echo "go=$1 ldflags=$2"; } | sha256sum | cut -d' ' -f1
}

# go build -v, its package lines turned into a progress count; errors pass through.
go_build() {  # go_build MODULE_DIR PACKAGE OUTPUT LDFLAGS LABEL
  local total
  total="$(cd "$1" && go list -deps "$2" 2>/dev/null | wc -l)" || total="?"
  (cd "$1" && go build -v -p 2 -trimpath -ldflags="$4" -o "$3" "$2") 2>&1 \
    | awk -v label="$5" -v total="$total" '
        /^go: downloading / { next }
        /^[^ :#]+$/ {
          if (++n % 100 == 0) {
            printf "controlplane.sh: %s: %d of %s packages compiled\n", label, n, total
            fflush()
          }
          next
        }
        { print; fflush() }' >&2
}

# Helm's Makefile stamps its version and the Kubernetes version that `helm template` and
# `helm lint` assume (else 1.20, and a chart's kubeVersion ">=1.28.0-0" fails to render).
helm_ldflags() {  # helm_ldflags HELM_VERSION K8S_VERSION GO_VERSION
  local k="${2#v}" flags
  flags="$(ldflags "$2" "$3")"
  flags+=" -X helm.sh/helm/v3/internal/version.version=$1"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=${k%%.*} -X $pkg.k8sVersionMinor=$(echo "$k" | cut -d. -f2)"
  done
  echo "$flags"
}

helm_version() {
  local v
  v="$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$HELM_MOD/go.mod")"
  [ -n "$v" ] || die "helmtool/go.mod: no 'require helm.sh/helm/v3 vX.Y.Z' line in $HELM_MOD/go.mod"
  echo "$v"
}

# helm into BIN (the control plane's bin dir, so that the fixture's PATH finds it), with
# its own stamp: a helm change rebuilds helm only. Called with the build lock held.
build_helm() {  # build_helm BIN K8S_VERSION GO_VERSION
  local bin="$1" version flags stamp step=$SECONDS
  version="$(helm_version)"
  flags="$(helm_ldflags "$version" "$2" "$3")"
  stamp="$({ cat "$HELM_MOD/go.mod" "$HELM_MOD/go.sum"; echo "go=$3 ldflags=$flags"; } \
    | sha256sum | cut -d' ' -f1)"
  if [ -x "$bin/helm" ] && [ -f "$bin/.helm.stamp" ] && [ "$(cat "$bin/.helm.stamp")" = "$stamp" ]; then
    say "reusing helm $version in $bin"
    return
  fi
  say "[helm] go build helm.sh/helm/v3/cmd/helm $version (cold: 5 to 10 minutes)"
  rm -f "$bin/helm.partial" "$bin/.helm.stamp"
  go_build "$HELM_MOD" helm.sh/helm/v3/cmd/helm "$bin/helm.partial" "$flags" "[helm] helm" \
    || die "go build helm.sh/helm/v3/cmd/helm $version failed (see the compiler output above)"
  mv "$bin/helm.partial" "$bin/helm"
  echo "$stamp" >"$bin/.helm.stamp"
  say "[helm] helm $version built in $((SECONDS - step)) s"
}

# Go is a prerequisite: the build compiles kube-apiserver, kube-controller-manager, kubectl
# and helm from source (even a warm cache is checked against the Go version it was built with).
require_go() {
  command -v go >/dev/null && return
  local hint="install Go 1.22 or newer (the go line of tests/k8s/go.mod) and put its bin directory on PATH"
  [ -x /usr/local/go/bin/go ] && hint="/usr/local/go/bin/go exists: add /usr/local/go/bin to PATH"
  die "go: not found on PATH; the Kubernetes test binaries are built from Go source: $hint"
}

cmd_build() {
  require_go
  export GOPATH="$CACHE/gopath" GOMODCACHE="$CACHE/gopath/pkg/mod" GOCACHE="$CACHE/gocache"
  export GOTOOLCHAIN="${SUBNETLAB_K8S_GOTOOLCHAIN:-local}" GOFLAGS=-mod=mod CGO_ENABLED=0
  local version bin stamp flags go_version
  version="$(k8s_version)"
  go_version="$(cd "$HERE" && go env GOVERSION)" \
    || die "go env GOVERSION failed (GOTOOLCHAIN=$GOTOOLCHAIN)"
  flags="$(ldflags "$version" "$go_version")"
  bin="$(bin_dir)"
  stamp="$(build_stamp "$go_version" "$flags")"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build.lock"
  flock 9  # one build at a time; a second caller waits, then reuses
  if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ]; then
    say "reusing $version binaries in $bin"
    build_helm "$bin" "$version" "$go_version"
    echo "$bin"
    return
  fi
  local tmp="$CACHE/$version/bin.partial" i=0 start step
  rm -rf "$tmp" && mkdir -p "$tmp"
  say "building Kubernetes $version from source with $go_version (cold: 10 to 20 minutes)"
  start=$SECONDS
  for c in "${COMMANDS[@]}"; do
    i=$((i + 1)); step=$SECONDS
    say "[$i/${#COMMANDS[@]}] go build k8s.io/kubernetes/cmd/$c"
    go_build "$HERE" "k8s.io/kubernetes/cmd/$c" "$tmp/$c" "$flags" "[$i/${#COMMANDS[@]}] $c" \
      || die "go build k8s.io/kubernetes/cmd/$c failed (see the compiler output above)"
    say "[$i/${#COMMANDS[@]}] $c built in $((SECONDS - step)) s"
  done
  echo "$stamp" >"$tmp/.stamp"
  rm -rf "$bin" && mv "$tmp" "$bin"
  say "built $version in $((SECONDS - start)) s into $bin"
  build_helm "$bin" "$version" "$go_version"
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# CA, apiserver serving cert, service-account key pair and client certs, like envtest's.
make_certs() {
  local d="$1" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=subnetlab-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  sign() {  # sign NAME SUBJECT EXTENSIONS
    openssl req -new "${ec[@]}" -subj "$2" -keyout "$d/$1.key" -out "$d/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$d/$1.ext"
    openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/$1.ext" -out "$d/$1.crt" 2>/dev/null
    rm -f "$d/$1.csr" "$d/$1.ext"
  }
  sign apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  local client="keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  sign admin "/O=system:masters/CN=subnetlab-admin" "$client"
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
  openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub"
}

write_kubeconfig() {  # write_kubeconfig FILE SERVER CA CERT KEY USER
  # an admin credential: readable by its owner only (helm warns otherwise)
  (umask 077; : >"$1")
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: subnetlab-test
  cluster: {server: "$2", certificate-authority: "$3"}
users:
- name: $6
  user: {client-certificate: "$4", client-key: "$5"}
contexts:
- name: subnetlab-test
  context: {cluster: subnetlab-test, user: $6, namespace: default}
current-context: subnetlab-test
EOF
}

PIDS=()
STOPPING=0
stop_all() {
  [ "$STOPPING" = 1 ] && return
  STOPPING=1
  local p n
  # Reverse start order: controller-manager, apiserver, then etcd.
  for ((n = ${#PIDS[@]} - 1; n >= 0; n--)); do kill -TERM "${PIDS[n]}" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${DATA_DIR:-/nonexistent}" "${RUN_DIR:-/nonexistent}/ready"
  say "stopped"
}

# Poll CHECK (a command) until it succeeds; a dead process or the deadline fails loudly.
wait_for() {  # wait_for WHAT SECONDS LOG CHECK...
  local what="$1" limit="$2" log="$3" p deadline=$((SECONDS + $2))
  shift 3
  until "$@" >/dev/null 2>&1; do
    for p in "${PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || die "$what: a control-plane process exited; last lines of $log:
$(tail -n 20 "$log")"
    done
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not ready after ${limit} s; last lines of $log:
$(tail -n 20 "$log")"
    sleep 0.2
  done
}

cmd_run() {
  local dir="" watch=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch-pid) [ $# -ge 2 ] || die "--watch-pid: needs a process id"; watch="$2"; shift 2 ;;
      -*) die "run: unknown option '$1'" ;;
      *) [ -z "$dir" ] || die "run: one DIR only, got '$dir' and '$1'"; dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || die "run: DIR is required (an empty or new directory for the state)"
  if [ -n "$watch" ]; then
    [[ "$watch" =~ ^[0-9]+$ ]] || die "--watch-pid: '$watch' is not a process id"
    kill -0 "$watch" 2>/dev/null || die "--watch-pid: no process $watch"
  fi
  if [ -e "$dir" ]; then
    [ -d "$dir" ] || die "run: DIR '$dir' exists and is not a directory"
    [ -z "$(ls -A "$dir")" ] || die "run: DIR '$dir' is not empty (stale state would be reused)"
  fi
  command -v "${ETCD:-etcd}" >/dev/null \
    || die "etcd: not found (install Debian's etcd-server package, or set ETCD)"
  local bin c
  bin="$(bin_dir)"
  for c in "${COMMANDS[@]}"; do
    [ -x "$bin/$c" ] || die "$bin/$c: missing; run '$0 build' first"
  done
  mkdir -p "$dir"
  RUN_DIR="$(cd "$dir" && pwd)"
  # etcd fsyncs every write; on tmpfs that costs nothing, and the data is throwaway anyway.
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    DATA_DIR="$(mktemp -d /dev/shm/subnetlab-etcd.XXXXXX)"
  else
    DATA_DIR="$RUN_DIR/etcd-data"
  fi
  local pki="$RUN_DIR/pki" etcd_port peer_port api_port server
  mkdir -p "$pki"
  trap 'stop_all' EXIT
  trap 'exit 0' TERM INT HUP
  local t0=$SECONDS
  make_certs "$pki"
  etcd_port="$(free_port)" peer_port="$(free_port)" api_port="$(free_port)"
  server="https://127.0.0.1:$api_port"

  "${ETCD:-etcd}" --name=subnetlab-test --data-dir="$DATA_DIR" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="subnetlab-test=http://127.0.0.1:$peer_port" \
    --log-level=warn --logger=zap >"$RUN_DIR/etcd.log" 2>&1 &
  PIDS+=($!)
  wait_for etcd 60 "$RUN_DIR/etcd.log" curl -sf "http://127.0.0.1:$etcd_port/health"

  "$bin/kube-apiserver" --advertise-address=127.0.0.1 --bind-address=127.0.0.1 \
    --secure-port="$api_port" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=RBAC --allow-privileged=true \
    --service-cluster-ip-range=10.0.0.0/24 --service-account-issuer="$server" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --profiling=false --v=0 >"$RUN_DIR/kube-apiserver.log" 2>&1 &
  PIDS+=($!)
  write_kubeconfig "$RUN_DIR/kubeconfig" "$server" "$pki/ca.crt" \
    "$pki/admin.crt" "$pki/admin.key" subnetlab-admin
  write_kubeconfig "$RUN_DIR/controller-manager.kubeconfig" "$server" "$pki/ca.crt" \
    "$pki/controller-manager.crt" "$pki/controller-manager.key" system:kube-controller-manager
  local kubectl=("$bin/kubectl" --kubeconfig="$RUN_DIR/kubeconfig")
  wait_for kube-apiserver 120 "$RUN_DIR/kube-apiserver.log" "${kubectl[@]}" get --raw /readyz

  local cm_kc="$RUN_DIR/controller-manager.kubeconfig"
  "$bin/kube-controller-manager" --kubeconfig="$cm_kc" \
    --authentication-kubeconfig="$cm_kc" --authorization-kubeconfig="$cm_kc" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --v=0 >"$RUN_DIR/kube-controller-manager.log" 2>&1 &
  PIDS+=($!)
  # The serviceaccount controller creating "default" proves the controller-manager works.
  wait_for kube-controller-manager 120 "$RUN_DIR/kube-controller-manager.log" \
    "${kubectl[@]}" get serviceaccount default --namespace=default

  printf 'server=%s\nkubeconfig=%s\nbin_dir=%s\npids=%s\n' \
    "$server" "$RUN_DIR/kubeconfig" "$bin" "${PIDS[*]}" >"$RUN_DIR/ready"
  say "ready in $((SECONDS - t0)) s: $server (KUBECONFIG=$RUN_DIR/kubeconfig)"
  while true; do
    if [ -n "$watch" ] && ! kill -0 "$watch" 2>/dev/null; then
      say "process $watch is gone; stopping"
      exit 0
    fi
    for c in "${PIDS[@]}"; do
      kill -0 "$c" 2>/dev/null || die "a control-plane process ($c) exited; logs in $RUN_DIR"
    done
    sleep 1 &
    wait $! || true
  done
}

# Keep only the built binaries: frees the ~4 GB of module and build caches, at the price
# of a cold build when go.mod changes.
cmd_prune() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build.lock"
  flock 9
  [ -d "$CACHE/gopath" ] && chmod -R u+w "$CACHE/gopath"  # the module cache is read-only
  rm -rf "$CACHE/gopath" "$CACHE/gocache"
  say "kept $(du -sh "$CACHE" | cut -f1) of binaries in $CACHE"
}

case "${1:-}" in
  prune) shift; [ $# -eq 0 ] || die "prune: takes no arguments, got '$*'"; cmd_prune ;;
  build) shift; [ $# -eq 0 ] || die "build: takes no arguments, got '$*'"; cmd_build ;;
  bin-dir) shift; [ $# -eq 0 ] || die "bin-dir: takes no arguments, got '$*'"; bin_dir ;;
  run) shift; cmd_run "$@" ;;
  "") die "a command is required: build, bin-dir, run DIR [--watch-pid PID] or prune" ;;
  *) die "unknown command '$1' (expected build, bin-dir, run or prune)" ;;
esac
