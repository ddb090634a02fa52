"""Fixtures for the end-to-end tests: subnetlab's pods running for real on a cluster.

Why: the chart and the operator are also tested against a bare API server (tests/k8s/),
where no pod ever runs. Here every pod runs (images, probes, Service DNS, volumes), on:

- a cluster you give: ``KUBECONFIG`` and ``SUBNETLAB_E2E_IMAGE`` (the subnetlab image the
  chart was installed with) set, the chart installed in namespace ``SUBNETLAB_E2E_RELEASE_NS``
  (default ``subnetlab``) as release ``SUBNETLAB_E2E_RELEASE`` (default ``subnetlab``), and
  ``SUBNETLAB_LEDGER`` a URL of its ledger reachable from here (kind: a port-forward). This
  is the GitHub workflow's route (.github/workflows/e2e-kind.yml);
- otherwise the from-source node of this repository: ``tests/k8s/cluster.sh up`` (as root),
  reused when it is already up, and torn down at the end when this session started it
  (``SUBNETLAB_E2E_KEEP=1`` keeps it).

Stable interface:

``cluster`` (package: the node is stopped once tests/e2e is done, not at the end of the
    whole run) -> :class:`Cluster`
    ``.kubectl(*args, check=True, input=None, timeout=120)``, ``.chain`` (a `LedgerClient`),
    ``.helm(*args)``, ``.image``, ``.release``, ``.release_ns``, ``.env``
``demo`` (package) -> str
    a namespace running manifests/examples/default.yaml, every Neuron Ready; shared by the
    modules (the faults module leaves it healthy again)
``fresh_namespace(cluster, prefix)``: a context manager that makes a namespace and, on
    exit, deletes its Subnets first (their finalizers need the ledger), then the namespace.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from subnetlab.ledger.client import LedgerClient
from tests.k8s.conftest import eventually

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "tests" / "k8s" / "cluster.sh"
CONTROLPLANE_SH = REPO / "tests" / "k8s" / "controlplane.sh"
UP_TIMEOUT_S = 3 * 3600  # bounds a hung cold build; a warm `up` takes a minute or two


class KubectlError(RuntimeError):
    """kubectl (or helm) exited non-zero; the message names the command and its stderr."""


def _tool_dir() -> str | None:
    """The bin dir of the repository's Kubernetes build (kubectl, helm), when built."""
    done = subprocess.run(["bash", str(CONTROLPLANE_SH), "bin-dir"], capture_output=True,
                          text=True, check=False)
    path = done.stdout.strip()
    return path if done.returncode == 0 and Path(path, "kubectl").exists() else None


@dataclass
class Cluster:
    """A cluster running the chart, and how to reach it from the test process."""

    kubeconfig: str
    ledger: str
    image: str
    release: str = "subnetlab"
    release_ns: str = "subnetlab"
    started_here: bool = False
    tool_dir: str | None = field(default_factory=_tool_dir)

    @property
    def env(self) -> dict[str, str]:
        path = os.environ.get("PATH", "")
        if self.tool_dir:
            path = f"{self.tool_dir}{os.pathsep}{path}"
        return {**os.environ, "KUBECONFIG": self.kubeconfig, "PATH": path,
                "SUBNETLAB_LEDGER": self.ledger}

    def _run(self, tool: str, args: tuple[str, ...], check: bool, input: str | None,
             timeout: float) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([tool, *args], input=input, capture_output=True, text=True,
                              timeout=timeout, check=False, env=self.env)
        if check and done.returncode != 0:
            raise KubectlError(f"{tool} {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr.strip()[-2000:]}")
        return done

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return self._run("kubectl", args, check, input, timeout)

    def helm(self, *args: str, check: bool = True,
             timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        return self._run("helm", args, check, None, timeout)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    @cached_property
    def chain(self) -> LedgerClient:
        """The ledger, through the one ledger client (closed with the fixture)."""
        return LedgerClient(self.ledger, timeout=10.0)


def _exports(text: str) -> dict[str, str]:
    """The `export NAME=VALUE` lines cluster.sh prints last."""
    pairs = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            pairs[name] = value
    return pairs


def _chart_app_version() -> str:
    for line in (REPO / "helm" / "subnetlab" / "Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise RuntimeError("helm/subnetlab/Chart.yaml has no appVersion")


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    given = os.environ.get("KUBECONFIG"), os.environ.get("SUBNETLAB_E2E_IMAGE")
    if all(given):
        ledger = os.environ.get("SUBNETLAB_LEDGER")
        if not ledger:
            pytest.fail("KUBECONFIG and SUBNETLAB_E2E_IMAGE are set, so the e2e tests use that "
                        "cluster: SUBNETLAB_LEDGER must be its ledger's URL reachable from here "
                        "(e.g. kubectl port-forward svc/subnetlab-ledger 9944)", pytrace=False)
        given_cluster = Cluster(
            kubeconfig=str(given[0]), ledger=ledger, image=str(given[1]),
            release=os.environ.get("SUBNETLAB_E2E_RELEASE", "subnetlab"),
            release_ns=os.environ.get("SUBNETLAB_E2E_RELEASE_NS", "subnetlab"))
        yield given_cluster
        given_cluster.chain.close()
        return
    status = subprocess.run(["bash", str(CLUSTER_SH), "status"], capture_output=True, text=True,
                            check=False)
    already_up = status.returncode == 0
    if already_up:
        exports = _exports(status.stdout)
    else:
        # cluster.sh's progress goes to stderr, which pytest shows when the fixture fails.
        up = subprocess.run(["bash", str(CLUSTER_SH), "up"], capture_output=True, text=True,
                            timeout=UP_TIMEOUT_S, check=False)
        if up.returncode != 0:
            pytest.fail(f"tests/k8s/cluster.sh up exited {up.returncode}:\n"
                        f"{up.stderr[-4000:]}", pytrace=False)
        exports = _exports(up.stdout)
    image = f"subnetlab:{_chart_app_version()}"
    cl = Cluster(kubeconfig=exports["KUBECONFIG"], ledger=exports["SUBNETLAB_LEDGER"],
                 image=image, started_here=not already_up)
    try:
        yield cl
    finally:
        cl.chain.close()
        if cl.started_here and os.environ.get("SUBNETLAB_E2E_KEEP") != "1":
            subprocess.run(["bash", str(CLUSTER_SH), "down"], capture_output=True, text=True,
                           timeout=600, check=False)


@contextmanager
def fresh_namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    """A new namespace; on exit its Subnets go first (their Neurons' finalizers return stake
    through the ledger), then the namespace itself, waited for within a bound."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "subnets.subnetlab.io", "--all", "-n", name, "--wait=true",
                        "--timeout=180s", check=False, timeout=200)
        cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=180s",
                        check=False, timeout=200)


def apply_example(cluster: Cluster, namespace: str, example: str) -> None:
    path = REPO / "manifests" / "examples" / example
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))


def neurons(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get_json("neurons.subnetlab.io", "-n", namespace)["items"]
    return items


def wait_all_ready(cluster: Cluster, namespace: str, expected: int, timeout: float) -> None:
    """Every Neuron (and the Subnet) Ready, and each neuron's pod Running with its
    containers Ready (real probes)."""

    def ready() -> bool:
        items = neurons(cluster, namespace)
        phases = [n.get("status", {}).get("phase") for n in items]
        if len(items) != expected or any(p != "Ready" for p in phases):
            return False
        subnets = cluster.get_json("subnets.subnetlab.io", "-n", namespace)["items"]
        return all(s.get("status", {}).get("phase") == "Ready" for s in subnets)

    try:
        eventually(ready, timeout, f"{expected} Neurons Ready in {namespace}")
    except TimeoutError:
        summary = cluster.kubectl("get", "neurons,subnets,pods", "-n", namespace, "-o", "wide",
                                  check=False).stdout
        raise TimeoutError(f"not every Neuron became Ready in {namespace}:\n{summary}") from None
    pods = cluster.get_json("pods", "-n", namespace)["items"]
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
        statuses = pod["status"].get("containerStatuses", [])
        assert statuses and all(c["ready"] for c in statuses), pod["metadata"]["name"]


def in_cluster_python(cluster: Cluster, namespace: str, code: str, timeout: float = 180) -> str:
    """Run `python3 -c code` in a one-off pod of the subnetlab image (restricted security
    context) and return what it printed: traffic that must go through Services and DNS."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    security = {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    overrides = {"spec": {"containers": [{
        "name": name, "image": cluster.image, "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", code], "securityContext": security}],
        "restartPolicy": "Never"}}
    cluster.kubectl("run", name, "-n", namespace, f"--image={cluster.image}", "--restart=Never",
                    f"--overrides={json.dumps(overrides)}")
    try:
        def finished() -> str | None:
            phase = cluster.kubectl("get", "pod", name, "-n", namespace, "-o",
                                    "jsonpath={.status.phase}", check=False).stdout
            return phase if phase in ("Succeeded", "Failed") else None

        phase = eventually(finished, timeout, f"pod {name} to finish")
        logs = cluster.kubectl("logs", name, "-n", namespace).stdout
        assert phase == "Succeeded", f"{name} {phase}:\n{logs}"
        return logs
    finally:
        cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)


def wait_epochs(cluster: Cluster, netuid: int, count: int, timeout: float) -> dict[str, Any]:
    """Wait until the ledger has run `count` more epochs of `netuid`; its subnet record."""
    start = int(cluster.chain.subnet(netuid)["epochs_run"])

    def advanced() -> dict[str, Any] | None:
        info: dict[str, Any] = cluster.chain.subnet(netuid)
        return info if int(info["epochs_run"]) >= start + count else None

    info = eventually(advanced, timeout, f"{count} epochs of subnet {netuid}")
    assert info is not None
    return info


DEFAULT_NEURONS = 8  # manifests/examples/default.yaml: 2 validators, 6 miners


@pytest.fixture(scope="package")
def demo(cluster: Cluster) -> Iterator[str]:
    with fresh_namespace(cluster, "e2e-default") as namespace:
        apply_example(cluster, namespace, "default.yaml")
        wait_all_ready(cluster, namespace, DEFAULT_NEURONS, timeout=600)
        yield namespace


def netuid_of(cluster: Cluster, namespace: str, subnet: str = "demo") -> int:
    return int(cluster.get_json("subnet.subnetlab.io", subnet, "-n", namespace)
               ["status"]["netuid"])


def gateway_key(cluster: Cluster, namespace: str, validator: str = "validator-0") -> str:
    """A customer API key of `validator`'s gateway: the first of its gateway-keys copy."""
    secret = cluster.get_json("secret", f"{validator}-gateway-keys", "-n", namespace)
    return base64.b64decode(secret["data"]["api-keys"]).decode().split(",")[0].strip()


def neuron_named(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return next(n for n in neurons(cluster, namespace) if n["metadata"]["name"] == name)
