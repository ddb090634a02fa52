"""Time the operator on a real cluster: the default example, and many Neurons on one node.

Two measurements against the cluster in `$KUBECONFIG` (with `kubectl` on the PATH), each
in a fresh namespace `bench-k8s-…` that is deleted afterwards (its Subnets first: their
Neurons' finalizers return stake through the ledger):

- `default`: `kubectl apply -f manifests/examples/default.yaml`, then the time until every
  Neuron's status is Ready (the operator registered it, its pod passed its readiness
  probe), and the time until the ledger ran the subnet's first epoch after that (its
  `epochs_run`, read from the ledger's HTTP API). Repeated; the median is reported.
- `many`: one Subnet, one validator and N-1 `sim` miners with small `spec.resources`
  requests, applied at once; the time until the first, half and all N are Ready.

Times come from polling (`kubectl get` every `poll_s`): each is late by at most one poll
interval plus one `kubectl` call. Nothing here asserts a time; the figures are recorded
in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from subnetlab.ledger.client import LedgerClient, LedgerClientError
from subnetlab.specs import DEFAULT_REQUESTS, quantity_value

Progress = Callable[[str], None]

NEURONS = "neurons.subnetlab.io"
NAMESPACE_PREFIX = "bench-k8s"
DELETE_TIMEOUT_S = 300


class KubeBenchError(RuntimeError):
    """The cluster could not be measured: the message says what failed."""


@dataclass(frozen=True)
class Kubectl:
    """`kubectl` against one cluster (`kubeconfig` None: kubectl's own default)."""

    kubeconfig: str | None = None
    binary: str = "kubectl"

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120.0,
            check: bool = True) -> str:
        command = [self.binary, *(["--kubeconfig", self.kubeconfig] if self.kubeconfig else []),
                   *args]
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError:
            raise KubeBenchError(f"{self.binary}: not found (put kubectl on the PATH)") from None
        except subprocess.TimeoutExpired:
            raise KubeBenchError(f"kubectl {' '.join(args)}: no answer in {timeout:.0f}s") from None
        if check and done.returncode != 0:
            raise KubeBenchError(f"kubectl {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr.strip()[-1000:]}")
        return done.stdout

    def items(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self.run("get", resource, "-n", namespace, "-o", "json"))["items"]
        return found


@contextmanager
def bench_namespace(kubectl: Kubectl, progress: Progress) -> Iterator[str]:
    """A new namespace, deleted on exit (Subnets first, then the namespace, both waited for)."""
    name = f"{NAMESPACE_PREFIX}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        progress(f"deleting namespace {name}")
        wait = (f"--timeout={DELETE_TIMEOUT_S}s", "--wait=true")
        kubectl.run("delete", "subnets.subnetlab.io", "--all", "-n", name, *wait,
                    timeout=DELETE_TIMEOUT_S + 20, check=False)
        kubectl.run("delete", "namespace", name, *wait, timeout=DELETE_TIMEOUT_S + 20,
                    check=False)


def _ready_count(kubectl: Kubectl, namespace: str) -> int:
    return sum(1 for n in kubectl.items(NEURONS, namespace)
               if n.get("status", {}).get("phase") == "Ready")


def _wait_ready(kubectl: Kubectl, namespace: str, expected: int, start: float,
                timeout_s: float, poll_s: float, progress: Progress) -> dict[str, float]:
    """Seconds from `start` to the first, half and all `expected` Neurons Ready."""
    marks: dict[str, float] = {}
    targets = {"first": 1, "half": (expected + 1) // 2, "all": expected}
    while True:
        ready = _ready_count(kubectl, namespace)
        elapsed = time.monotonic() - start
        for mark, needed in targets.items():
            if ready >= needed and mark not in marks:
                marks[mark] = elapsed
        if "all" in marks:
            return marks
        if elapsed > timeout_s:
            pending = kubectl.run("get", "pods", "-n", namespace, "--field-selector",
                                  "status.phase!=Running", "--no-headers", check=False)
            raise KubeBenchError(
                f"{ready} of {expected} Neurons Ready in {namespace} after {timeout_s:.0f}s; "
                f"pods not Running: {len(pending.splitlines())} (does the node have room for "
                "their requests? see `kubectl describe node`)")
        progress(f"{namespace}: {ready}/{expected} Neurons Ready, {elapsed:.0f}s")
        time.sleep(poll_s)


def _subnet_netuid(kubectl: Kubectl, namespace: str) -> int:
    subnets = kubectl.items("subnets.subnetlab.io", namespace)
    netuids = [s.get("status", {}).get("netuid") for s in subnets]
    if len(netuids) != 1 or netuids[0] is None:
        raise KubeBenchError(f"{namespace}: expected one Subnet with a netuid, got {netuids}")
    return int(netuids[0])


def epochs_run(ledger: str, netuid: int) -> int:
    """The ledger's `epochs_run` of subnet `netuid`."""
    try:
        with LedgerClient(ledger, timeout=10.0) as client:
            return int(client.subnet(netuid)["epochs_run"])
    except (LedgerClientError, ValueError) as exc:
        raise KubeBenchError(f"ledger {ledger}: subnet {netuid}: {exc}") from None


@dataclass(frozen=True)
class DefaultRun:
    """One apply of the default example: seconds from `kubectl apply` (its start)."""

    neurons: int
    ready_s: float
    first_epoch_s: float
    delete_s: float


@dataclass(frozen=True)
class ManyRun:
    """N Neurons applied at once: seconds from `kubectl apply` (its start)."""

    neurons: int
    cpu_request: str | None
    memory_request: str | None
    first_ready_s: float
    half_ready_s: float
    all_ready_s: float
    delete_s: float


@dataclass
class KubeBenchResult:
    default_runs: list[DefaultRun] = field(default_factory=list)
    many: ManyRun | None = None
    node: dict[str, str] = field(default_factory=dict)

    @property
    def ready_median_s(self) -> float | None:
        runs = [r.ready_s for r in self.default_runs]
        return statistics.median(runs) if runs else None

    @property
    def epoch_median_s(self) -> float | None:
        runs = [r.first_epoch_s for r in self.default_runs]
        return statistics.median(runs) if runs else None

    def as_json(self) -> dict[str, object]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        many = None
        if self.many is not None:
            m = self.many
            many = {"neurons": m.neurons, "cpu_request": m.cpu_request,
                    "memory_request": m.memory_request, "first_ready_s": rounded(m.first_ready_s),
                    "half_ready_s": rounded(m.half_ready_s),
                    "all_ready_s": rounded(m.all_ready_s), "delete_s": rounded(m.delete_s)}
        return {
            "node": self.node,
            "default": {
                "runs": [{"neurons": r.neurons, "ready_s": rounded(r.ready_s),
                          "first_epoch_s": rounded(r.first_epoch_s),
                          "delete_s": rounded(r.delete_s)} for r in self.default_runs],
                "ready_median_s": rounded(self.ready_median_s),
                "first_epoch_median_s": rounded(self.epoch_median_s),
            },
            "many": many,
        }


def free_room(kubectl: Kubectl) -> tuple[Decimal, Decimal]:
    """CPU cores and memory bytes left to request on the cluster's nodes together: their
    allocatable less what the pods that are not finished request (init containers aside)."""
    nodes = json.loads(kubectl.run("get", "nodes", "-o", "json"))["items"]
    cpu = sum((quantity_value(n["status"]["allocatable"].get("cpu", "0")) for n in nodes),
              Decimal(0))
    memory = sum((quantity_value(n["status"]["allocatable"].get("memory", "0")) for n in nodes),
                 Decimal(0))
    pods = json.loads(kubectl.run("get", "pods", "-A", "--field-selector",
                                  "status.phase!=Succeeded,status.phase!=Failed", "-o",
                                  "json", timeout=300))["items"]
    for pod in pods:
        for container in pod["spec"].get("containers", []):
            requests = container.get("resources", {}).get("requests", {})
            cpu -= quantity_value(str(requests.get("cpu", "0")))
            memory -= quantity_value(str(requests.get("memory", "0")))
    return cpu, memory


def node_summary(kubectl: Kubectl) -> dict[str, str]:
    """Nodes, their allocatable CPU and memory, and the kubelet version: what the run ran on."""
    nodes = json.loads(kubectl.run("get", "nodes", "-o", "json"))["items"]
    parts = [f"{n['metadata']['name']}: {n['status']['allocatable'].get('cpu')} CPU, "
             f"{n['status']['allocatable'].get('memory')}, "
             f"{n['status'].get('nodeInfo', {}).get('kubeletVersion', '?')}" for n in nodes]
    return {"nodes": str(len(nodes)), "allocatable": "; ".join(parts)}


def time_default_example(kubectl: Kubectl, ledger: str, manifest: Path, timeout_s: float,
                         poll_s: float, progress: Progress) -> DefaultRun:
    """Apply `manifest` (one Subnet and its Neurons) in a fresh namespace and time it."""
    expected = sum(1 for doc in yaml.safe_load_all(manifest.read_text())
                   if isinstance(doc, dict) and doc.get("kind") == "Neuron")
    with bench_namespace(kubectl, progress) as namespace:
        start = time.monotonic()
        kubectl.run("apply", "-n", namespace, "-f", str(manifest))
        ready_s = _wait_ready(kubectl, namespace, expected, start, timeout_s, poll_s,
                              progress)["all"]
        netuid = _subnet_netuid(kubectl, namespace)
        before = epochs_run(ledger, netuid)
        while epochs_run(ledger, netuid) <= before:
            elapsed = time.monotonic() - start
            if elapsed > timeout_s:
                raise KubeBenchError(f"subnet {netuid} ({namespace}): no epoch in "
                                     f"{timeout_s:.0f}s (epochs_run stays {before})")
            progress(f"{namespace}: all Ready, waiting for an epoch of subnet {netuid}, "
                     f"{elapsed:.0f}s")
            time.sleep(min(poll_s, 0.25))
        first_epoch_s = time.monotonic() - start
        deleting = time.monotonic()
    return DefaultRun(expected, ready_s, first_epoch_s, time.monotonic() - deleting)


def many_neurons_manifest(neurons: int, cpu: str | None, memory: str | None) -> str:
    """One Subnet `bench`, validator-0 and `neurons - 1` sim miners, with these requests."""
    docs: list[dict[str, Any]] = [{
        "apiVersion": "subnetlab.io/v1alpha1", "kind": "Subnet", "metadata": {"name": "bench"},
        "spec": {"hyperparameters": {
            "tempo": 100, "weightsRateLimit": 5, "immunityPeriod": 5000,
            "maxAllowedUids": max(256, neurons),
            "maxRegistrationsPerBlock": 64, "targetRegistrationsPerInterval": 64}},
    }]
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    resources = {"resources": {"requests": requests}} if requests else {}

    def neuron(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
                "metadata": {"name": name}, "spec": {"subnet": "bench", **spec, **resources}}

    docs.append(neuron("validator-0", {"role": "validator", "stake": 1000}))
    docs += [neuron(f"miner-{i:03d}", {"role": "miner", "miner": {"backend": {"type": "sim"}}})
             for i in range(1, neurons)]
    return str(yaml.safe_dump_all(docs, sort_keys=False))


def crd_has_resources(kubectl: Kubectl) -> bool:
    """Whether the cluster's Neuron CRD knows `spec.resources` (an operator of this version)."""
    crd = json.loads(kubectl.run("get", "crd", NEURONS, "-o", "json"))
    versions = crd["spec"]["versions"]
    spec = versions[0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return "resources" in spec.get("properties", {})


def check_room(kubectl: Kubectl, neurons: int, cpu: str | None, memory: str | None) -> None:
    """KubeBenchError unless `neurons` pods with these requests (None: the operator's
    defaults) fit in what the nodes have left to request: else some would stay Pending."""
    cpu_free, memory_free = free_room(kubectl)
    cpu_each = quantity_value(cpu or DEFAULT_REQUESTS["cpu"])
    memory_each = quantity_value(memory or DEFAULT_REQUESTS["memory"])
    if neurons * cpu_each > cpu_free or neurons * memory_each > memory_free:
        raise KubeBenchError(
            f"{neurons} Neurons requesting {cpu_each * 1000:.0f}m CPU and "
            f"{memory_each / 2**20:.0f}Mi each do not fit: the nodes have "
            f"{cpu_free * 1000:.0f}m CPU and {memory_free / 2**20:.0f}Mi left "
            "to request (lower --neurons, --cpu or --memory, or wait for other namespaces "
            "to go)")


def time_many_neurons(kubectl: Kubectl, neurons: int, cpu: str | None, memory: str | None,
                      timeout_s: float, poll_s: float, progress: Progress) -> ManyRun:
    """Apply one Subnet with `neurons` Neurons at once and time them to Ready."""
    check_room(kubectl, neurons, cpu, memory)
    manifest = many_neurons_manifest(neurons, cpu, memory)
    with bench_namespace(kubectl, progress) as namespace:
        start = time.monotonic()
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest, timeout=300)
        marks = _wait_ready(kubectl, namespace, neurons, start, timeout_s, poll_s, progress)
        deleting = time.monotonic()
    return ManyRun(neurons, cpu, memory, marks["first"], marks["half"], marks["all"],
                   time.monotonic() - deleting)
