#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the tests: etcd (Debian's etcd-server),
# kube-apiserver, kube-controller-manager and kubectl built from source through the Go module
# proxy (tests/k8s/go.mod pins k8s.io/kubernetes and every staging module), started the way
# controller-runtime's envtest does. With no node (tests/k8s/cluster.sh starts one), Pods
# stay Pending. The same build puts in the bin dir, all static (CGO_ENABLED=0):
#   kubelet, kube-scheduler, kube-proxy  for the test node, from the same k8s.io/kubernetes
#   helm                                 for the chart tests (helmtool/go.mod)
#   coredns, local-path-provisioner      the node's add-ons (addons/coredns/go.mod,
#                                        addons/local-path-provisioner/go.mod)
#   actionlint                           CI's lint of .github/workflows (actionlinttool/go.mod)
#   prometheus                           the e2e tests' scrapes (prometheustool/go.mod; the
#                                        kubernetes service discovery only, no web UI assets)
# Each binary has its own stamp (Go version, flags, its module's go.mod and go.sum, checked
# against its own dependencies): a change rebuilds only the binaries it touches.
#
#   controlplane.sh build                 build what is missing or stale, or reuse the cache;
#                                         prints the bin dir
#   controlplane.sh bin-dir               print the bin dir of the pinned version (builds nothing)
#   controlplane.sh prune                 delete the Go module and build caches, keep the binaries
#   controlplane.sh run DIR [--watch-pid PID] [--address IP]
#                                         start everything with state under DIR (empty or new),
#                                         write DIR/kubeconfig and DIR/ready, then wait; SIGTERM,
#                                         SIGINT or the end of PID stops every process it started;
#                                         --address: the IP the API server binds and advertises
#                                         (default 127.0.0.1; the test node passes its bridge's
#                                         address so that pods reach it through the kubernetes
#                                         Service); --node NAME: also start kube-scheduler
#                                         and write DIR/NAME-kubelet.kubeconfig and
#                                         DIR/kube-proxy.kubeconfig for that node (tests/k8s/cluster.sh)
#
# Environment: SUBNETLAB_K8S_CACHE (default ~/.cache/subnetlab/k8s), SUBNETLAB_K8S_GOTOOLCHAIN
# (default "local": the installed go), ETCD (default: etcd on PATH).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_MOD="$HERE/helmtool"
COREDNS_MOD="$HERE/addons/coredns"
LOCAL_PATH_MOD="$HERE/addons/local-path-provisioner"
ACTIONLINT_MOD="$HERE/actionlinttool"
PROMETHEUS_MOD="$HERE/prometheustool"
CACHE="${SUBNETLAB_K8S_CACHE:-$HOME/.cache/subnetlab/k8s}"
COMMANDS=(kube-apiserver kube-controller-manager kubectl)  # the control plane `run` needs
NODE_COMMANDS=(kubelet kube-scheduler kube-proxy)          # the test node's (cluster.sh)
TOOLS=(helm coredns local-path-provisioner actionlint prometheus)  # each from its own go.mod
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

# The version of MODULE that DIR/go.mod requires (a require line or a require block).
module_version() {  # module_version DIR MODULE
  local v rel="${1#"$HERE"}"
  rel="${rel#/}"
  v="$(awk -v m="$2" '
    $1 == "require" && $2 == "(" { block = 1; next }
    block && $1 == ")" { block = 0; next }
    $1 == "require" && $2 == m { print $3; exit }
    block && $1 == m { print $2; exit }' "$1/go.mod")"
  [ -n "$v" ] || die "${rel}${rel:+/}go.mod: no 'require $2 vX.Y.Z' line in $1/go.mod"
  echo "$v"
}

k8s_version() { module_version "$HERE" k8s.io/kubernetes; }

bin_dir() {
  local version
  version="$(k8s_version)"  # a separate assignment, so that its failure stops the script
  echo "$CACHE/$version/bin"
}

# go build -v, its package lines turned into a progress count; errors pass through.
go_build() {  # go_build MODULE_DIR PACKAGE OUTPUT LDFLAGS LABEL TAGS
  local total
  total="$(cd "$1" && go list -deps -tags="$6" "$2" 2>/dev/null | wc -l)" || total="?"
  (cd "$1" && go build -v -p 2 -trimpath -tags="$6" -ldflags="$4" -o "$3" "$2") 2>&1 \
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

# The modules a binary is made of, one "path version[ => path version]" line each, and the
# Go version, sorted: from the sources (go list) or from a built binary (its build info,
# `go version -m`), in the same form so that the two compare.
source_deps() {  # source_deps MODULE_DIR PACKAGE TAGS
  local f='{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}'
  f+='{{with .Replace}} => {{.Path}} {{.Version}}{{end}}{{end}}{{end}}'
  { echo "$GO_VERSION"; (cd "$1" && go list -deps -tags="$3" -f "$f" "$2"); } \
    | sed '/^$/d' | sort -u
}
binary_deps() {  # binary_deps FILE
  go version -m "$1" | awk -F'\t' '
    NR == 1 { sub(/^.*: /, ""); print; next }
    $2 == "mod" || $2 == "dep" { if (d != "") print d; d = $3 " " $4 }
    $2 == "=>" { d = d " => " $3 " " $4 }
    END { if (d != "") print d }' | sort -u
}

# Before stamps per binary, BIN/.stamp vouched for kube-apiserver, kube-controller-manager
# and kubectl together, and BIN/.helm.stamp (a bare hash) for helm: legacy_hash. Prints the
# one that vouches for NAME, if any.
legacy_hash() {  # legacy_hash MODULE_DIR LDFLAGS
  { cat "$1/go.mod" "$1/go.sum"; echo "go=$GO_VERSION ldflags=$2"; } | sha256sum | cut -d' ' -f1
}
legacy_stamp() {  # legacy_stamp BIN NAME
  if [ -f "$1/.$2.stamp" ] && ! grep -q '^build=' "$1/.$2.stamp"; then
    cat "$1/.$2.stamp"
  elif [[ " ${COMMANDS[*]} " == *" $2 "* ]] && [ -f "$1/.stamp" ]; then
    cat "$1/.stamp"
  fi
}

# Each binary has its own stamp, BIN/.NAME.stamp: "build=" hashes the Go version, the package,
# the linker flags and the build tags if any, "sources=" its module's go.mod and go.sum.
# Another build line rebuilds. Other sources (the module gained a binary, a requirement
# moved) rebuild only if the binary's own dependencies changed (go list, with its tags,
# against its build info): adding a binary to a module never rebuilds the others. Called
# with the build lock held; BUILT and REUSED collect the names.
build_binary() {  # build_binary BIN NAME MODULE_DIR PACKAGE VERSION LDFLAGS STEP COLD_HINT [TAGS]
  local bin="$1" name="$2" dir="$3" pkg="$4" version="$5" flags="$6" label="$7" hint="$8"
  local tags="${9:-}" out="$1/$2" stamp="$1/.$2.stamp" build sources legacy old_build=""
  local old_sources="" step=$SECONDS mod="tests/k8s${3#"$HERE"}/go.mod"
  # (no tags: the same hash as before tags were part of it, so no binary is rebuilt for it)
  build="$(echo "go=$GO_VERSION package=$pkg ldflags=$flags${tags:+ tags=$tags}" \
    | sha256sum | cut -d' ' -f1)"
  sources="$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -d' ' -f1)"
  if [ -x "$out" ]; then
    if [ -f "$stamp" ] && grep -q '^build=' "$stamp"; then
      old_build="$(sed -n 's/^build=//p' "$stamp")"
      old_sources="$(sed -n 's/^sources=//p' "$stamp")"
    else
      legacy="$(legacy_stamp "$bin" "$name")"
      if [ -n "$legacy" ]; then
        # Adopted with the flags taken as this script's (unchanged since those stamps); the
        # Go version and the dependencies are checked below unless the old hash matches.
        old_build="$build" old_sources=legacy
        if [ "$legacy" = "$(legacy_hash "$dir" "$flags")" ]; then old_sources="$sources"; fi
      fi
    fi
    if [ "$old_build" = "$build" ]; then
      if [ "$old_sources" != "$sources" ]; then
        if [ "$(source_deps "$dir" "$pkg" "$tags")" = "$(binary_deps "$out")" ]; then
          if [ "$old_sources" = legacy ]; then
            say "$label $name $version kept: an older controlplane.sh stamped it, its" \
              "dependencies match $mod"
          else
            say "$label $name $version kept: $mod or go.sum changed, its dependencies did not"
          fi
          old_sources="$sources"
        fi
      fi
      if [ "$old_sources" = "$sources" ]; then
        [ "$(cat "$stamp" 2>/dev/null)" = "$(printf 'build=%s\nsources=%s' "$build" "$sources")" ] \
          || printf 'build=%s\nsources=%s\n' "$build" "$sources" >"$stamp"
        REUSED+=("$name")
        return
      fi
    fi
  fi
  say "$label go build${tags:+ -tags=$tags} $pkg $version (cold: $hint)"
  rm -f "$out.partial" "$stamp"
  go_build "$dir" "$pkg" "$out.partial" "$flags" "$label $name" "$tags" \
    || die "go build $pkg $version failed (see the compiler output above)"
  mv "$out.partial" "$out"
  printf 'build=%s\nsources=%s\n' "$build" "$sources" >"$stamp"
  BUILT+=("$name")
  say "$label $name $version built in $((SECONDS - step)) s"
}

# The highest go line of the go.mod files the build uses: the Go it needs.
go_needed() {
  awk '
    function newer(a, b,   x, y, i) {
      split(a, x, "."); split(b, y, ".")
      for (i = 1; i <= 3; i++) if (x[i] + 0 != y[i] + 0) return x[i] + 0 > y[i] + 0
      return 0
    }
    $1 == "go" && (best == "" || newer($2, best)) { best = $2 }
    END { print best }' "$HERE/go.mod" "$HELM_MOD/go.mod" "$COREDNS_MOD/go.mod" \
    "$LOCAL_PATH_MOD/go.mod" "$ACTIONLINT_MOD/go.mod" "$PROMETHEUS_MOD/go.mod" 2>/dev/null
}

# Go is a prerequisite: the build compiles every binary from source (even a warm cache is
# checked against the Go version it was built with).
require_go() {
  command -v go >/dev/null && return
  local hint
  hint="install Go $(go_needed) or newer (the highest go line of the go.mod files under"
  hint+=" tests/k8s) and put its bin directory on PATH"
  [ -x /usr/local/go/bin/go ] && hint="/usr/local/go/bin/go exists: add /usr/local/go/bin to PATH"
  die "go: not found on PATH; the Kubernetes test binaries are built from Go source: $hint"
}

# Prometheus 3.x is tagged v0.3XY.Z in its Go module, 2.x v0.XY.Z: the release it is.
prometheus_release() {  # prometheus_release MODULE_VERSION (v0.316.0 -> 3.16.0)
  local rest="${1#v0.}" minor
  minor="${rest%%.*}"
  [[ "$1" == v0.* && "$minor" =~ ^[0-9]+$ ]] \
    || die "tests/k8s/prometheustool/go.mod: '$1' is not a Prometheus module version (v0.3XY.Z)"
  if [ "$minor" -ge 100 ]; then
    echo "$((minor / 100)).$((minor % 100)).${rest#*.}"
  else
    echo "2.$minor.${rest#*.}"
  fi
}

# The tools built into the same bin dir from their own modules: the chart tests' helm, the
# test node's add-ons (tests/k8s/cluster.sh), CI's workflow linter and the e2e tests'
# Prometheus. Each one's linker flags stamp its version the way its own release build does.
build_tool() {  # build_tool BIN NAME STEP K8S_VERSION
  local dir pkg v flags tags=""
  case "$2" in
    helm) dir="$HELM_MOD" pkg=helm.sh/helm/v3/cmd/helm
      v="$(module_version "$dir" helm.sh/helm/v3)"
      flags="$(helm_ldflags "$v" "$4" "$GO_VERSION")" ;;
    coredns) dir="$COREDNS_MOD" pkg=github.com/coredns/coredns  # its version is a constant
      v="$(module_version "$dir" "$pkg")"
      flags="-s -w" ;;
    local-path-provisioner) dir="$LOCAL_PATH_MOD" pkg=github.com/rancher/local-path-provisioner
      v="$(module_version "$dir" "$pkg")"
      flags="-s -w -X main.VERSION=$v" ;;
    actionlint) dir="$ACTIONLINT_MOD" pkg=github.com/rhysd/actionlint/cmd/actionlint
      v="$(module_version "$dir" github.com/rhysd/actionlint)"
      flags="-s -w -X github.com/rhysd/actionlint.version=$v" ;;
    prometheus) dir="$PROMETHEUS_MOD" pkg=github.com/prometheus/prometheus/cmd/prometheus
      v="$(module_version "$dir" github.com/prometheus/prometheus)"
      flags="-s -w -X github.com/prometheus/common/version.Version=$(prometheus_release "$v")"
      # Its README's way to drop service discoveries: only kubernetes (and the built-in
      # static, file and http) stay, and with them most of the cloud SDKs. No builtinassets
      # tag: the web UI is not compiled in; the tests use the HTTP API (/api/v1, /-/ready).
      tags=remove_all_sd,enable_kubernetes_sd ;;
    *) die "build_tool: unknown tool '$2'" ;;
  esac
  build_binary "$1" "$2" "$dir" "$pkg" "$v" "$flags" "$3" "$(cold_hint "$2")" "$tags"
}

# What a cold build of NAME costs on the 2-core machine, with the Go cache of the binaries
# built before it in the same run (the Kubernetes ones share most of their packages).
cold_hint() {  # cold_hint NAME
  case "$1" in
    kube-apiserver) echo "4 to 10 minutes" ;;
    kube-controller-manager) echo "1.5 to 4 minutes after kube-apiserver" ;;
    kubectl) echo "1 to 2 minutes after kube-apiserver" ;;
    kubelet) echo "about 40 s after the control plane" ;;
    kube-scheduler | kube-proxy) echo "about 10 s after the control plane" ;;
    helm) echo "1.5 to 3 minutes after the control plane" ;;
    coredns) echo "3 to 5 minutes" ;;
    local-path-provisioner) echo "2 to 4 minutes (client-go v0.33, not the control plane's)" ;;
    actionlint) echo "about 10 s" ;;
    prometheus) echo "about 2.5 minutes after coredns (it shares its client-go and gRPC)" ;;
  esac
}

cmd_build() {
  require_go
  export GOPATH="$CACHE/gopath" GOMODCACHE="$CACHE/gopath/pkg/mod" GOCACHE="$CACHE/gocache"
  export GOTOOLCHAIN="${SUBNETLAB_K8S_GOTOOLCHAIN:-local}" GOFLAGS=-mod=mod CGO_ENABLED=0
  local version bin flags c i=0 n start=$SECONDS
  version="$(k8s_version)"
  GO_VERSION="$(cd "$HERE" && go env GOVERSION)" \
    || die "go env GOVERSION failed (GOTOOLCHAIN=$GOTOOLCHAIN)"
  flags="$(ldflags "$version" "$GO_VERSION")"
  bin="$(bin_dir)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build.lock"
  flock 9  # one build at a time; a second caller waits, then reuses
  mkdir -p "$bin"
  rm -rf "$CACHE/$version/bin.partial"  # left by a build from before the stamps per binary
  BUILT=() REUSED=()
  n=$((${#COMMANDS[@]} + ${#NODE_COMMANDS[@]} + ${#TOOLS[@]}))
  for c in "${COMMANDS[@]}" "${NODE_COMMANDS[@]}"; do
    i=$((i + 1))
    build_binary "$bin" "$c" "$HERE" "k8s.io/kubernetes/cmd/$c" "$version" "$flags" \
      "[$i/$n]" "$(cold_hint "$c")"
  done
  rm -f "$bin/.stamp"  # the stamp of the three before stamps per binary: replaced now
  for c in "${TOOLS[@]}"; do
    i=$((i + 1))
    build_tool "$bin" "$c" "[$i/$n]" "$version"
  done
  [ ${#REUSED[@]} -eq 0 ] || say "up to date in $bin: ${REUSED[*]}"
  [ ${#BUILT[@]} -eq 0 ] || say "built ${BUILT[*]} in $((SECONDS - start)) s into $bin"
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

EC_KEY=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

# A key and a certificate signed by DIR's CA, DIR/NAME.key and DIR/NAME.crt.
sign() {  # sign DIR NAME SUBJECT EXTENSIONS
  local d="$1"
  openssl req -new "${EC_KEY[@]}" -subj "$3" -keyout "$d/$2.key" -out "$d/$2.csr" 2>/dev/null
  printf '%s\n' "$4" >"$d/$2.ext"
  openssl x509 -req -in "$d/$2.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/$2.ext" -out "$d/$2.crt" 2>/dev/null
  rm -f "$d/$2.csr" "$d/$2.ext"
}

CLIENT_EXT="keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

# CA, apiserver serving cert, service-account key pair and client certs, like envtest's.
make_certs() {  # make_certs DIR API_IP
  local d="$1"
  openssl req -x509 "${EC_KEY[@]}" -days 2 -subj "/CN=subnetlab-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  sign "$d" apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$2,IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  sign "$d" admin "/O=system:masters/CN=subnetlab-admin" "$CLIENT_EXT"
  sign "$d" controller-manager "/CN=system:kube-controller-manager" "$CLIENT_EXT"
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
# shellcheck disable=SC2317  # called by the EXIT trap only
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
  local dir="" watch="" address=127.0.0.1 node=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch-pid) [ $# -ge 2 ] || die "--watch-pid: needs a process id"; watch="$2"; shift 2 ;;
      --address) [ $# -ge 2 ] || die "--address: needs an IP address"; address="$2"; shift 2
        [[ "$address" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] \
          || die "--address: '$address' is not an IPv4 address" ;;
      --node) [ $# -ge 2 ] || die "--node: needs a node name"; node="$2"; shift 2
        [[ "$node" =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] \
          || die "--node: '$node' is not a valid node name (lower-case DNS name)" ;;
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
  make_certs "$pki" "$address"
  etcd_port="$(free_port)" peer_port="$(free_port)" api_port="$(free_port)"
  server="https://$address:$api_port"

  "${ETCD:-etcd}" --name=subnetlab-test --data-dir="$DATA_DIR" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="subnetlab-test=http://127.0.0.1:$peer_port" \
    --log-level=warn --logger=zap >"$RUN_DIR/etcd.log" 2>&1 &
  PIDS+=($!)
  wait_for etcd 60 "$RUN_DIR/etcd.log" curl -sf "http://127.0.0.1:$etcd_port/health"

  "$bin/kube-apiserver" --advertise-address="$address" --bind-address="$address" \
    --secure-port="$api_port" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC --allow-privileged=true \
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

  if [ -n "$node" ]; then
    [ -x "$bin/kube-scheduler" ] || die "$bin/kube-scheduler: missing; run '$0 build' first"
    # The Node authorizer admits a kubelet by this name and group; the RBAC defaults bind
    # system:kube-proxy and system:kube-scheduler to their roles.
    sign "$pki" kubelet "/O=system:nodes/CN=system:node:$node" "$CLIENT_EXT"
    sign "$pki" kube-proxy "/CN=system:kube-proxy" "$CLIENT_EXT"
    sign "$pki" kube-scheduler "/CN=system:kube-scheduler" "$CLIENT_EXT"
    write_kubeconfig "$RUN_DIR/$node-kubelet.kubeconfig" "$server" "$pki/ca.crt" \
      "$pki/kubelet.crt" "$pki/kubelet.key" "system:node:$node"
    write_kubeconfig "$RUN_DIR/kube-proxy.kubeconfig" "$server" "$pki/ca.crt" \
      "$pki/kube-proxy.crt" "$pki/kube-proxy.key" system:kube-proxy
    write_kubeconfig "$RUN_DIR/kube-scheduler.kubeconfig" "$server" "$pki/ca.crt" \
      "$pki/kube-scheduler.crt" "$pki/kube-scheduler.key" system:kube-scheduler
    local sched_kc="$RUN_DIR/kube-scheduler.kubeconfig"
    "$bin/kube-scheduler" --kubeconfig="$sched_kc" --authentication-kubeconfig="$sched_kc" \
      --authorization-kubeconfig="$sched_kc" --bind-address=127.0.0.1 --secure-port=0 \
      --leader-elect=false --v=0 >"$RUN_DIR/kube-scheduler.log" 2>&1 &
    PIDS+=($!)
  fi

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
esac; exit  # on this line: bash reads a script as it runs, and a build outlives edits to it
