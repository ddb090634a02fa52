"""The operator against a real control plane and a real ledger.

Real parts only: the kube-apiserver validates and stores the CRDs' objects, the
kube-controller-manager turns Deployments into ReplicaSets and Pods and garbage-collects
by owner reference, the ledger is `subnetlab ledger serve` on a real Redis, and the
operator is `subnetlab operator run` in its own process, authenticated as the
`subnetlab-operator` ServiceAccount bound to manifests/rbac (so every test also proves the
ClusterRole is enough). There is no kubelet: Pods stay Pending, so neurons reach
`Starting` (registered, staked, workload applied) and never `Ready`.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.wallet import hotkey_from_document
from tests.integration.conftest import (
    LedgerProcess,
    RedisServer,
    free_port,
    start_ledger,
    start_redis_server,
    stop_redis_server,
)
from tests.k8s.conftest import ControlPlane, KubectlError, eventually

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
WAIT_S = 90.0
ALICE = Keypair.dev("alice").ss58_address
OperatorFactory = Callable[..., "OperatorProcess"]


# ---- the control plane with CRDs and RBAC installed ----------------------------------------


@pytest.fixture(scope="module")
def plane(kube_controlplane: ControlPlane) -> ControlPlane:
    """The control plane with the generated CRDs and the operator's RBAC applied."""
    kube_controlplane.kubectl("apply", "-f", str(ROOT / "manifests" / "crds"))
    kube_controlplane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                              "crd/subnets.subnetlab.io", "crd/neurons.subnetlab.io")
    kube_controlplane.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac"))
    # What a GPU cluster has (the GPU example's miners ask for it; without it the
    # RuntimeClass admission plugin refuses their Pods).
    kube_controlplane.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "nvidia"}, "handler": "nvidia"}))
    return kube_controlplane


@pytest.fixture(scope="module")
def operator_kubeconfig(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the operator's ServiceAccount token (not the admin's certificate)."""
    token = plane.kubectl("create", "token", "subnetlab-operator", "-n", "subnetlab-system",
                          "--duration=3h").stdout.strip()
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "operator"}}],
    }))
    return path


# ---- ledgers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    stop_redis_server(server)


@pytest.fixture(scope="module")
def ledger(module_redis: RedisServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerProcess]:
    """One fast-block ledger shared by the module's tests (each test has its own namespace
    and subnets on it)."""
    process = start_ledger(tmp_path_factory.mktemp("ledger"), module_redis.url)
    yield process
    process.kill(signal.SIGTERM)


def chain(ledger: LedgerProcess) -> LedgerClient:
    return LedgerClient(ledger.url, timeout=10)


def alice_stake_on(ledger: LedgerProcess, hotkey: str) -> int:
    with chain(ledger) as client:
        positions = client.account(ALICE)["stake"]
    return sum(int(p["amount"]) for p in positions if p["hotkey"] == hotkey)


def metagraph_rows(ledger: LedgerProcess, netuid: int) -> list[dict[str, Any]]:
    with chain(ledger) as client:
        rows: list[dict[str, Any]] = client.metagraph(netuid)["neurons"]
    return rows


# ---- the operator process ---------------------------------------------------------------------


@dataclass
class OperatorProcess:
    """`subnetlab operator run` watching one namespace, as the ServiceAccount."""

    namespace: str
    ledger_url: str
    kubeconfig: Path
    log: Path
    metrics_port: int = field(default_factory=free_port)
    liveness_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Further environment (SUBNETLAB_OPERATOR_* settings without a flag)."""

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1",
               **self.env}
        command = [sys.executable, "-m", "subnetlab", "operator", "run", "-n", self.namespace,
                   "--ledger", self.ledger_url, "--image", "subnetlab:test",
                   "--sync-interval", "1", "--delete-give-up", "4",
                   "--metrics-port", str(self.metrics_port),
                   "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        eventually(self._alive, WAIT_S, f"the operator's liveness endpoint (log: {self.log})")

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited {self.process.returncode}:\n{self.text()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz",
                             timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no cleanup handler runs, whatever it was doing stops mid-way."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """Every line of its log (stdout and stderr) as a JSON object; a line that is not
        one fails the test, quoted."""
        found = []
        for line in self.text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON log line: {line!r}") from None
            assert isinstance(record, dict), line
            found.append(record)
        return found


@pytest.fixture
def operator_factory(plane: ControlPlane, operator_kubeconfig: Path, kube_namespace: str,
                     tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start operators for the test's namespace; at the end, while one still runs, delete
    the test's Subnets and Neurons so their finalizers never leave the namespace stuck."""
    started: list[OperatorProcess] = []

    def make(ledger_url: str, env: dict[str, str] | None = None) -> OperatorProcess:
        op = OperatorProcess(kube_namespace, ledger_url, operator_kubeconfig,
                             tmp_path / f"operator{len(started)}.log", env=env or {})
        op.start()
        started.append(op)
        return op

    yield make
    running = [op for op in started if op.process is not None and op.process.poll() is None]
    if running:
        plane.kubectl("delete", "neurons,subnets", "--all", "-n", kube_namespace,
                      "--wait=true", "--timeout=90s", check=False, timeout=120)
    for op in started:
        op.stop()


# ---- reading the cluster ---------------------------------------------------------------------


def get(plane: ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if done.returncode != 0:
        if "NotFound" in done.stderr:
            return None
        raise KubectlError(done.stderr)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def status(plane: ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj = get(plane, namespace, kind, name) or {}
    found: dict[str, Any] = obj.get("status") or {}
    return found


def gone(plane: ControlPlane, namespace: str, kind: str, name: str) -> bool:
    return get(plane, namespace, kind, name) is None


def synced_since(plane: ControlPlane, namespace: str, name: str, last: str) -> bool:
    """Whether a Neuron's status was synced after `last` (RFC 3339 times sort as text)."""
    return str(status(plane, namespace, "neuron", name).get("lastSync", "")) > last


def conditions(st: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in st.get("conditions", [])}


def ready_message(st: dict[str, Any]) -> str:
    return str(next(c["message"] for c in st["conditions"] if c["type"] == "Ready"))


def events(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    out = plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    found: list[dict[str, Any]] = json.loads(out)["items"]
    return found


def event_reasons(plane: ControlPlane, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(plane, namespace)
            if e["involvedObject"]["name"] == name]


def wait_phase(plane: ControlPlane, namespace: str, kind: str, name: str,
               phase: str) -> dict[str, Any]:
    return eventually(
        lambda: st if (st := status(plane, namespace, kind, name)).get("phase") == phase else {},
        WAIT_S, f"{kind} {name} to be {phase}")


def apply(plane: ControlPlane, namespace: str, manifest: str | Path) -> None:
    if isinstance(manifest, Path):
        plane.kubectl("apply", "-n", namespace, "-f", str(manifest))
    else:
        plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def neuron(name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
                       "metadata": {"name": name}, "spec": spec})


def subnet(name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "subnetlab.io/v1alpha1", "kind": "Subnet",
                       "metadata": {"name": name}, "spec": spec})


FAST = {"hyperparameters": {"tempo": 20, "maxRegistrationsPerBlock": 8,
                            "targetRegistrationsPerInterval": 8, "immunityPeriod": 1000}}


# ---- the API server refuses invalid objects ----------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (neuron("bad", {"subnet": "s", "role": "boss"}), "spec.role: Unsupported value"),
        (neuron("bad", {"subnet": "s", "role": "miner", "stake": -1}), "spec.stake"),
        (neuron("bad", {"role": "miner"}), "spec.subnet: Required value"),
        (neuron("bad", {"subnet": "s", "role": "miner", "behaviour": "weight-copier"}),
         "spec.behaviour"),
        (neuron("bad", {"subnet": "s", "role": "miner", "miner": {"backend": {"type": "vllm"}}}),
         "spec.miner.backend.model: Invalid value: \"object\": model is required when type is"),
        (neuron("bad", {"subnet": "s", "role": "miner",
                        "miner": {"backend": {"type": "sim", "gpus": 1}}}),
         "spec.miner.backend.gpus"),
        (neuron("bad", {"subnet": "s", "role": "miner", "miner": {"backend": {
            "type": "vllm", "model": "m", "memory": "lots"}}}), "spec.miner.backend.memory"),
        (neuron("bad", {"subnet": "s", "role": "validator", "miner": {}}), "spec.miner"),
        (neuron("bad", {"subnet": "s", "role": "miner", "wallet": {"devKey": "a",
                                                                   "wallet": "b"}}),
         "spec.wallet: Invalid value: \"object\": give devKey or wallet, not both"),
        (neuron("Bad", {"subnet": "s", "role": "miner"}), "metadata.name"),
        (neuron("7bad", {"subnet": "s", "role": "miner"}), "metadata.name must start with a"),
        (neuron("bad", {"subnet": "s", "role": "miner", "stak": 1}), "unknown field \"spec.stak\""),
        (subnet("bad", {"hyperparameters": {"kappa": 2}}), "spec.hyperparameters.kappa"),
        (subnet("bad", {"hyperparameters": {"tempoo": 2}}),
         "unknown field \"spec.hyperparameters.tempoo\""),
        (subnet("bad", {"tasks": {"kinds": {"arithmetic": -1}}}), "spec.tasks.kinds.arithmetic"),
    ],
)
def test_invalid_objects_are_refused_naming_the_field(plane: ControlPlane, kube_namespace: str,
                                                       manifest: str, expected: str) -> None:
    done = plane.kubectl("apply", "-n", kube_namespace, "-f", "-", input=manifest, check=False)
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr
    kind = json.loads(manifest)["kind"].lower()
    assert plane.kubectl("get", kind, "-n", kube_namespace, "-o", "name").stdout == ""


def test_immutable_fields_cannot_change(plane: ControlPlane, kube_namespace: str) -> None:
    apply(plane, kube_namespace, neuron("m", {"subnet": "s", "role": "miner"}))
    done = plane.kubectl("patch", "neuron", "m", "-n", kube_namespace, "--type=merge",
                         "-p", '{"spec": {"role": "validator"}}', check=False)
    assert done.returncode != 0 and "spec.role" in done.stderr
    assert "is immutable once created" in done.stderr
    plane.kubectl("delete", "neuron", "m", "-n", kube_namespace)


# ---- the operator ----------------------------------------------------------------------------


def test_operator_registers_neurons_and_applies_their_workloads(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    # Pods are admitted only if they meet the `restricted` Pod Security Standard (the
    # vLLM container included).
    plane.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
                  "pod-security.kubernetes.io/enforce-version=v1.30")
    op = operator_factory(ledger.url)
    apply(plane, ns, EXAMPLES / "gpu.yaml")
    apply(plane, ns, neuron("sim-miner", {"subnet": "gpu", "role": "miner", "stake": 2.5}))
    subnet_status = wait_phase(plane, ns, "subnet", "gpu", "Ready")
    netuid = subnet_status["netuid"]
    with chain(ledger) as client:
        info = client.subnet(netuid)
    assert info["owner"] == ALICE
    assert info["hyperparameters"]["tempo"] == 100  # from the example's spec
    assert info["hyperparameters"]["immunity_period"] == 4096

    names = ["gpu-validator", "gpu-miner-0", "gpu-miner-1", "sim-miner"]
    statuses = {n: wait_phase(plane, ns, "neuron", n, "Starting") for n in names}
    with chain(ledger) as client:
        metagraph = {row["hotkey"]: row for row in client.metagraph(netuid)["neurons"]}
    for name, st in statuses.items():
        assert st["hotkey"] in metagraph, f"{name} is not in the metagraph"
        assert st["uid"] == metagraph[st["hotkey"]]["uid"]
        assert st["netuid"] == netuid and st["coldkey"] == ALICE
        assert conditions(st)["Registered"] == ("True", "Registered")
        assert conditions(st)["Staked"] == ("True", "Staked")
        assert conditions(st)["Available"] == ("False", "DeploymentUnavailable")  # no kubelet
        assert st["endpoint"].startswith(f"http://{name}.{ns}.svc:")
        assert st["observedGeneration"] == 1
        # the key sits in the neuron's own Secret, owned by the Neuron
        secret = get(plane, ns, "secret", f"{name}-hotkey")
        assert secret is not None
        neuron_uid = (get(plane, ns, "neuron", name) or {})["metadata"]["uid"]
        assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [neuron_uid]
        document = json.loads(base64.b64decode(secret["data"]["hotkey"]))
        assert document["ss58_address"] == st["hotkey"]
        assert document["mnemonic"] not in op.text()  # keys are never logged
    assert alice_stake_on(ledger, statuses["gpu-validator"]["hotkey"]) >= 1000 * TOKEN
    assert alice_stake_on(ledger, statuses["sim-miner"]["hotkey"]) >= 2.5 * TOKEN

    # a vLLM miner: GPU limits, the pod settings of its spec, the miner sidecar
    deploy = get(plane, ns, "deployment", "gpu-miner-0")
    assert deploy is not None
    pod = deploy["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in pod["containers"]}
    assert set(by_name) == {"vllm", "miner"}
    assert by_name["vllm"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert by_name["vllm"]["resources"]["limits"]["memory"] == "24Gi"
    assert by_name["vllm"]["startupProbe"]["httpGet"]["path"] == "/health"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["runtimeClassName"] == "nvidia"
    assert by_name["miner"]["args"][:2] == ["miner", "serve"]
    # a simulated miner is the miner alone; a validator serves its gateway
    sim = get(plane, ns, "deployment", "sim-miner") or {}
    assert [c["name"] for c in sim["spec"]["template"]["spec"]["containers"]] == ["miner"]
    assert "nvidia.com/gpu" not in json.dumps(sim)
    validator_svc = get(plane, ns, "service", "gpu-validator") or {}
    assert validator_svc["spec"]["ports"][0]["name"] == "gateway"
    # the controller-manager took the Deployments over: ReplicaSets and (Pending) Pods,
    # each admitted by the restricted Pod Security Standard
    for name in names:
        eventually(lambda name=name: plane.kubectl(
            "get", "pods", "-n", ns, "-l", f"subnetlab.io/neuron={name}", "-o", "name").stdout,
            WAIT_S, f"a Pod for {name} (admitted under the restricted standard)")
    refused = [e["message"] for e in events(plane, ns) if e["reason"] == "FailedCreate"]
    assert refused == []
    gpu_pod = json.loads(plane.kubectl("get", "pods", "-n", ns, "-l",
                                       "subnetlab.io/neuron=gpu-miner-0", "-o", "json").stdout)
    vllm = next(c for c in gpu_pod["items"][0]["spec"]["containers"] if c["name"] == "vllm")
    assert vllm["securityContext"]["runAsUser"] == 10001
    assert vllm["securityContext"]["allowPrivilegeEscalation"] is False

    # printer columns, events, metrics, liveness
    table = plane.kubectl("get", "neurons", "-n", ns).stdout
    assert table.split()[:9] == ["NAME", "SUBNET", "ROLE", "NETUID", "UID", "PHASE", "STAKE",
                                 "INCENTIVE", "AGE"]
    assert "Starting" in table
    assert "Registered" in event_reasons(plane, ns, "gpu-validator")
    assert "Created" in event_reasons(plane, ns, "gpu")
    metrics = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).text
    assert 'subnetlab_operator_reconciles_total{kind="Neuron",result="ok"}' in metrics
    assert "subnetlab_operator_ledger_up 1.0" in metrics
    assert 'subnetlab_operator_extrinsics_total{call="register",result="included"}' in metrics

    # structured logs: every line a JSON object, ours among them; no key material
    records = op.records()
    messages = [str(r.get("message", "")) for r in records]
    assert any(m.startswith("subnetlab operator ") for m in messages), messages[:5]
    assert any(m.startswith("Neuron ") and " is Starting: " in m for m in messages)
    assert all("severity" in r or "level" in r for r in records)
    for name in names:
        secret = get(plane, ns, "secret", f"{name}-hotkey") or {}
        document = json.loads(base64.b64decode(secret["data"]["hotkey"]))
        assert document["mnemonic"] not in op.text()


def test_a_hyperparameter_change_reaches_the_ledger(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    operator_factory(ledger.url)
    apply(plane, ns, subnet("hp", FAST))
    netuid = wait_phase(plane, ns, "subnet", "hp", "Ready")["netuid"]
    plane.kubectl("patch", "subnet", "hp", "-n", ns, "--type=merge", "-p",
                  '{"spec": {"hyperparameters": {"tempo": 37, "kappa": 0.6}}}')

    def on_ledger() -> dict[str, Any]:
        with chain(ledger) as client:
            hp: dict[str, Any] = client.subnet(netuid)["hyperparameters"]
        return hp if hp["tempo"] == 37 else {}

    hp = eventually(on_ledger, WAIT_S, "tempo 37 on the ledger")
    assert hp["kappa"] == 0.6
    assert "HyperparametersSet" in event_reasons(plane, ns, "hp")
    st = eventually(lambda: s if (s := status(plane, ns, "subnet", "hp")).get(
        "observedGeneration") == 2 else {}, WAIT_S, "observedGeneration 2")
    assert conditions(st)["HyperparametersSynced"][0] == "True"


def test_deleting_neurons_and_subnets_cleans_up(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    op = operator_factory(ledger.url)
    apply(plane, ns, subnet("del", FAST))
    apply(plane, ns, neuron("val", {"subnet": "del", "role": "validator", "stake": 10}))
    apply(plane, ns, neuron("min", {"subnet": "del", "role": "miner"}))
    val = wait_phase(plane, ns, "neuron", "val", "Starting")
    hotkey, netuid, uid = val["hotkey"], val["netuid"], val["uid"]
    miner = wait_phase(plane, ns, "neuron", "min", "Starting")
    assert alice_stake_on(ledger, hotkey) >= 10 * TOKEN
    assert metagraph_rows(ledger, netuid)[uid]["hotkey"] == hotkey
    subnet_uid = (get(plane, ns, "subnet", "del") or {})["metadata"]["uid"]
    owners = [r["uid"] for r in (get(plane, ns, "neuron", "min") or {})["metadata"][
        "ownerReferences"]]
    assert owners == [subnet_uid]  # deleting the Subnet takes its Neurons along

    plane.kubectl("delete", "neuron", "val", "-n", ns, "--wait=true", "--timeout=60s")
    assert alice_stake_on(ledger, hotkey) == 0  # the finalizer returned the stake
    reasons = event_reasons(plane, ns, "val")
    assert "Unstaked" in reasons and "Deregistered" in reasons, reasons
    rows = metagraph_rows(ledger, netuid)  # the hotkey is gone; its uid is vacant
    assert hotkey not in [r["hotkey"] for r in rows]
    assert rows[uid]["vacant"] is True and rows[uid]["hotkey"] is None
    assert rows[uid]["stake"] == 0 and rows[uid]["axon"] is None
    assert rows[miner["uid"]]["hotkey"] == miner["hotkey"]  # the miner keeps its uid
    eventually(lambda: status(plane, ns, "subnet", "del").get("neurons") == 1, WAIT_S,
               "the Subnet's status to count one neuron (a vacant uid is none)")
    for kind in ("secret", "deployment", "service"):
        child = "val-hotkey" if kind == "secret" else "val"
        eventually(partial(gone, plane, ns, kind, child), WAIT_S,
                   f"{kind} {child} to be garbage-collected")

    plane.kubectl("delete", "subnet", "del", "-n", ns, "--wait=true", "--timeout=60s")
    assert get(plane, ns, "neuron", "min") is None
    eventually(lambda: get(plane, ns, "deployment", "min") is None, WAIT_S,
               "the miner's Deployment to be garbage-collected")

    # One structured line per deletion, saying what was released.
    deleted = {(r["object"]["kind"], r["object"]["name"]): r for r in op.records()
               if r.get("event") == "deleted"}
    assert set(deleted) == {("Neuron", "val"), ("Neuron", "min"), ("Subnet", "del")}
    val_line = deleted[("Neuron", "val")]
    assert val_line["message"].startswith(f"Neuron {ns}/val deleted: hotkey {hotkey} (uid "
                                          f"{uid}) left netuid {netuid}; ")
    assert val_line["message"].endswith(" tokens of stake returned to the owner")
    assert val_line["released"]["hotkeys"][0]["unstaked_rao"] >= 10 * TOKEN
    assert deleted[("Subnet", "del")]["released"] == {"outcome": "released", "netuid": netuid,
                                                      "owner": ALICE}


def secret_text(plane: ControlPlane, namespace: str, name: str, key: str) -> str | None:
    found = get(plane, namespace, "secret", name)
    if found is None or key not in (found.get("data") or {}):
        return None
    return base64.b64decode(found["data"][key]).decode()


def test_a_validator_gets_the_gateway_keys_in_its_own_namespace(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    """The chart's gateway-keys Secret is in its release namespace; a validator in another
    one gets a copy of its own (owned by the Neuron, kept in step, the pod rolled onto
    rotated keys), and says what to create when there is nothing to copy."""
    ns, release = kube_namespace, f"{kube_namespace}-rel"
    plane.kubectl("create", "namespace", release)
    try:
        plane.kubectl("create", "secret", "generic", "subnetlab-gateway-keys", "-n", release,
                      "--from-literal=api-keys=k1,k2")
        operator_factory(ledger.url, env={"SUBNETLAB_OPERATOR_GATEWAY_KEYS_NAMESPACE": release})
        apply(plane, ns, subnet("gk", FAST))
        apply(plane, ns, neuron("v", {"subnet": "gk", "role": "validator", "stake": 2}))
        apply(plane, ns, neuron("m", {"subnet": "gk", "role": "miner"}))
        st = wait_phase(plane, ns, "neuron", "v", "Starting")
        assert conditions(st)["KeysReady"] == ("True", "SecretReady")
        assert secret_text(plane, ns, "v-gateway-keys", "api-keys") == "k1,k2"
        copy = get(plane, ns, "secret", "v-gateway-keys") or {}
        neuron_uid = (get(plane, ns, "neuron", "v") or {})["metadata"]["uid"]
        assert [r["uid"] for r in copy["metadata"]["ownerReferences"]] == [neuron_uid]
        wait_phase(plane, ns, "neuron", "m", "Starting")
        assert get(plane, ns, "secret", "m-gateway-keys") is None  # validators only

        def template() -> dict[str, Any]:
            found: dict[str, Any] = (get(plane, ns, "deployment", "v") or {})["spec"]["template"]
            return found

        container = template()["spec"]["containers"][0]
        keys_env = next(e for e in container["env"] if e["name"] == "SUBNETLAB_API_KEYS")
        assert keys_env["valueFrom"]["secretKeyRef"] == {"name": "v-gateway-keys",
                                                         "key": "api-keys"}
        before = template()["metadata"]["annotations"]["subnetlab.io/gateway-keys-source"]
        assert before.startswith(f"{release}/subnetlab-gateway-keys@")

        # Rotated at the source: the copy follows, and the pod template changes with it.
        plane.kubectl("patch", "secret", "subnetlab-gateway-keys", "-n", release,
                      "--type=merge", "-p", json.dumps({"data": {"api-keys": base64.b64encode(
                          b"k3").decode()}}))
        eventually(lambda: secret_text(plane, ns, "v-gateway-keys", "api-keys") == "k3",
                   WAIT_S, "the copy to follow the rotated keys")
        eventually(lambda: template()["metadata"]["annotations"][
            "subnetlab.io/gateway-keys-source"] != before, WAIT_S, "the pod template to roll")

        # No keys anywhere: a new validator says what to create.
        plane.kubectl("delete", "secret", "subnetlab-gateway-keys", "-n", release)
        apply(plane, ns, neuron("v2", {"subnet": "gk", "role": "validator"}))
        missing = eventually(
            lambda: st if conditions(st := status(plane, ns, "neuron", "v2")).get(
                "KeysReady") == ("False", "GatewayKeysMissing") else {},
            WAIT_S, "v2 to report GatewayKeysMissing")
        message = next(c["message"] for c in missing["conditions"] if c["type"] == "KeysReady")
        assert f"no Secret {ns}/subnetlab-gateway-keys or {release}/subnetlab-gateway-keys" in (
            message)
        assert f"kubectl create secret generic subnetlab-gateway-keys -n {release}" in message
        # A Secret of that name in the validator's own namespace is used from then on.
        plane.kubectl("create", "secret", "generic", "subnetlab-gateway-keys", "-n", ns,
                      "--from-literal=api-keys=team-key")
        eventually(lambda: secret_text(plane, ns, "v2-gateway-keys", "api-keys") == "team-key",
                   WAIT_S, "v2's copy of its namespace's own keys")
        eventually(lambda: conditions(status(plane, ns, "neuron", "v2"))["KeysReady"] == (
            "True", "SecretReady"), WAIT_S, "v2's KeysReady")

        # The copy goes with its Neuron.
        plane.kubectl("delete", "neuron", "v", "-n", ns, "--wait=true", "--timeout=60s")
        eventually(partial(gone, plane, ns, "secret", "v-gateway-keys"), WAIT_S,
                   "the copy to be garbage-collected with its Neuron")
    finally:
        plane.kubectl("delete", "namespace", release, "--wait=false", check=False)


def test_ledger_outage_is_reported_retried_and_recovered(
        plane: ControlPlane, kube_namespace: str, tmp_path: Path,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    redis = start_redis_server(tmp_path / "redis")
    own = start_ledger(tmp_path, redis.url)  # a ledger of its own, to stop and restart
    try:
        operator_factory(own.url)
        apply(plane, ns, subnet("out", FAST))
        apply(plane, ns, neuron("m1", {"subnet": "out", "role": "miner"}))
        apply(plane, ns, neuron("m2", {"subnet": "out", "role": "miner"}))
        before = wait_phase(plane, ns, "neuron", "m1", "Starting")
        wait_phase(plane, ns, "neuron", "m2", "Starting")

        own.kill(signal.SIGTERM)
        down = wait_phase(plane, ns, "neuron", "m1", "Degraded")
        assert conditions(down)["Registered"] == ("Unknown", "LedgerUnreachable")
        assert conditions(down)["Ready"] == ("False", "LedgerUnreachable")
        assert own.url.removeprefix("http://") in next(
            c["message"] for c in down["conditions"] if c["type"] == "Ready")
        wait_phase(plane, ns, "subnet", "out", "Degraded")
        # a finalizer facing a ledger that stays away gives up, with a Warning event
        plane.kubectl("delete", "neuron", "m2", "-n", ns, "--wait=true", "--timeout=60s")
        assert "GaveUp" in event_reasons(plane, ns, "m2")

        own.start()  # same Redis, same chain: the state comes back
        back = wait_phase(plane, ns, "neuron", "m1", "Starting")
        assert conditions(back)["Registered"] == ("True", "Registered")
        assert back["uid"] == before["uid"] and back["hotkey"] == before["hotkey"]
        assert wait_phase(plane, ns, "subnet", "out", "Ready")["netuid"] == before["netuid"]
    finally:
        own.kill(signal.SIGTERM)
        stop_redis_server(redis)


def test_operator_restart_duplicates_nothing_and_adopts_an_unrecorded_subnet(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    # An earlier operator sent create_subnet and died before recording the netuid:
    apply(plane, ns, subnet("adopt", FAST))
    with chain(ledger) as client:
        started_at = int(client.chain()["block"])
    plane.kubectl("patch", "subnet", "adopt", "-n", ns, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"creationStartedAtBlock": started_at}}))
    with chain(ledger) as client:
        client.submit(Keypair.dev("alice"), "create_subnet",
                      {"hyperparameters": {"tempo": 20}})
        lost = max(s["netuid"] for s in client.subnets() if s["owner"] == ALICE)
        count = len(client.subnets())
    first = operator_factory(ledger.url)
    assert wait_phase(plane, ns, "subnet", "adopt", "Ready")["netuid"] == lost
    assert "Adopted" in event_reasons(plane, ns, "adopt")
    apply(plane, ns, neuron("v", {"subnet": "adopt", "role": "validator", "stake": 5}))
    apply(plane, ns, neuron("m", {"subnet": "adopt", "role": "miner"}))
    seen = {n: wait_phase(plane, ns, "neuron", n, "Starting") for n in ("v", "m")}

    def snapshot() -> dict[str, Any]:
        with chain(ledger) as client:
            return {
                "subnets": len(client.subnets()),
                "uids": len(client.metagraph(lost)["neurons"]),
                "secrets": {n: (get(plane, ns, "secret", f"{n}-hotkey") or {})["data"]
                            for n in ("v", "m")},
                "objects": {f"{k}/{n}": (get(plane, ns, k, n) or {})["metadata"]["uid"]
                            for k in ("deployment", "service") for n in ("v", "m")},
                "registered": sorted(r for n in ("v", "m")
                                     for r in event_reasons(plane, ns, n) if r == "Registered"),
            }

    before = snapshot()
    assert before["subnets"] == count and before["uids"] == 2
    first.stop()
    last = first.records()[-1]  # SIGTERM: kopf's cleanup says it stopped, and what it held
    assert last["message"].startswith("operator stopped: ") and last["event"] == "stopped"
    assert last["objects"] >= 3 and last["ledger"] == ledger.url
    operator_factory(ledger.url)  # resumes every object
    for name, st in seen.items():  # a full pass of the new operator has run
        eventually(partial(synced_since, plane, ns, name, str(st["lastSync"])), WAIT_S,
                   f"a sync of {name} by the new operator")
    assert snapshot() == before
    assert alice_stake_on(ledger, seen["v"]["hotkey"]) >= 5 * TOKEN


def test_an_owner_without_a_key_gets_one_funded_by_the_faucet(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    operator_factory(ledger.url)
    apply(plane, ns, subnet("own", {**FAST, "owner": {}}))
    apply(plane, ns, neuron("v", {"subnet": "own", "role": "validator", "stake": 3}))
    netuid = wait_phase(plane, ns, "subnet", "own", "Ready")["netuid"]
    secret = get(plane, ns, "secret", "own-owner")
    assert secret is not None
    owner = base64.b64decode(secret["data"]["ss58Address"]).decode()
    assert owner != ALICE
    subnet_uid = (get(plane, ns, "subnet", "own") or {})["metadata"]["uid"]
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [subnet_uid]
    hotkey = wait_phase(plane, ns, "neuron", "v", "Starting")["hotkey"]
    with chain(ledger) as client:
        assert client.subnet(netuid)["owner"] == owner
        account = client.account(owner)
    assert account["last_faucet"] is not None  # its funds came from the faucet
    assert any(p["hotkey"] == hotkey and p["amount"] >= 3 * TOKEN for p in account["stake"])


def test_a_spec_the_operator_cannot_run_is_a_permanent_error(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    operator_factory(ledger.url)
    # A cross-field rule of the model is a CEL rule of the CRD too: refused at the door.
    done = plane.kubectl("apply", "-n", ns, "-f", "-", check=False, input=subnet(
        "crossed", {"hyperparameters": {"alphaLow": 0.9, "alphaHigh": 0.2}}))
    assert done.returncode != 0
    assert "spec.hyperparameters.alphaLow" in done.stderr
    assert "alphaLow must not exceed alphaHigh" in done.stderr
    # These pass the CRD schema; only a cluster makes them impossible.
    apply(plane, ns, subnet("ok", FAST))
    apply(plane, ns, neuron("disk", {"subnet": "ok", "role": "miner",
                                     "wallet": {"wallet": "my-wallet"}}))
    apply(plane, ns, neuron("local", {"subnet": "ok", "role": "miner",
                                      "behaviour": "passthrough", "miner": {"backend": {
                                          "type": "openai", "url": "local-sim-engine",
                                          "model": "m"}}}))
    disk = wait_phase(plane, ns, "neuron", "disk", "Failed")
    assert conditions(disk)["Ready"] == ("False", "InvalidSpec")
    assert ready_message(disk).startswith(
        "spec.wallet.wallet: on-disk wallets do not exist on a cluster")
    assert disk["observedGeneration"] == 1
    assert "InvalidSpec" in event_reasons(plane, ns, "disk")
    local = wait_phase(plane, ns, "neuron", "local", "Failed")
    assert ready_message(local).startswith("spec.miner.backend.url: local-sim-engine is the "
                                           "engine `subnetlab up` starts")
    for name in ("disk", "local"):
        assert get(plane, ns, "secret", f"{name}-hotkey") is None
        assert get(plane, ns, "deployment", name) is None
    # fixing the spec is all it takes
    plane.kubectl("patch", "neuron", "local", "-n", ns, "--type=merge", "-p", json.dumps(
        {"spec": {"miner": {"backend": {"url": "http://engine.example:8000"}}}}))
    fixed = wait_phase(plane, ns, "neuron", "local", "Starting")
    assert fixed["observedGeneration"] == 2 and fixed["uid"] is not None
    deploy = get(plane, ns, "deployment", "local") or {}
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--backend-url") + 1] == "http://engine.example:8000"


# ---- status follows the ledger -----------------------------------------------------------


def neuron_key(plane: ControlPlane, namespace: str, name: str) -> Keypair:
    """The hotkey the operator generated for a Neuron, read back from its Secret."""
    secret = get(plane, namespace, "secret", f"{name}-hotkey") or {}
    document = json.loads(base64.b64decode(secret["data"]["hotkey"]))
    return hotkey_from_document(document, f"Secret {namespace}/{name}-hotkey")


def status_matches_metagraph(st: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether a Neuron's status says what its metagraph row says (rao shown as tokens)."""
    expected = {"uid": row["uid"], "incentive": row["incentive"],
                "dividends": row["dividends"], "emission": round(row["emission"] / TOKEN, 9),
                "validatorPermit": row["validator_permit"],
                "stake": round(row["stake"] / TOKEN, 9)}
    return {k: st.get(k) for k in expected} == expected


def test_status_follows_the_metagraph_and_changes_made_on_the_ledger(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory, tmp_path: Path) -> None:
    ns = kube_namespace
    operator_factory(ledger.url)
    apply(plane, ns, subnet("sync", FAST))  # tempo 20: an epoch every 5 s
    apply(plane, ns, neuron("v", {"subnet": "sync", "role": "validator", "stake": 10}))
    for name in ("m1", "m2", "idle"):
        apply(plane, ns, neuron(name, {"subnet": "sync", "role": "miner"}))
    names = ["v", "m1", "m2", "idle"]
    netuid = wait_phase(plane, ns, "subnet", "sync", "Ready")["netuid"]
    seen = {n: wait_phase(plane, ns, "neuron", n, "Starting") for n in names}

    # The validator sets weights on the ledger itself (signed with the hotkey in its
    # Secret, as its pod would): the next epoch pays incentive, dividends and emission.
    with chain(ledger) as client:
        client.submit(neuron_key(plane, ns, "v"), "set_weights", {
            "netuid": netuid, "uids": [seen["m1"]["uid"], seen["m2"]["uid"]],
            "weights": [3, 1]})

    def paid() -> dict[str, dict[str, Any]]:
        rows = {r["hotkey"]: r for r in metagraph_rows(ledger, netuid)}
        by_name = {n: rows[seen[n]["hotkey"]] for n in names}
        return by_name if by_name["m2"]["incentive"] > 0 and by_name["v"]["dividends"] > 0 \
            else {}

    rows = eventually(paid, WAIT_S, "an epoch that pays the weighted miners")
    assert rows["m1"]["incentive"] > rows["m2"]["incentive"] > 0
    assert rows["m1"]["emission"] > 0 and rows["v"]["validator_permit"] is True

    def agree() -> dict[str, dict[str, Any]]:
        """One moment at which every status equals the metagraph (the timer syncs every
        second, an epoch comes every 5 s)."""
        rows = {r["hotkey"]: r for r in metagraph_rows(ledger, netuid)}
        statuses = {n: status(plane, ns, "neuron", n) for n in names}
        fresh = {n: rows[seen[n]["hotkey"]] for n in names}
        if all(status_matches_metagraph(statuses[n], fresh[n]) for n in names) and \
                fresh["m2"]["incentive"] > 0:
            return statuses
        return {}

    synced = eventually(agree, WAIT_S, "every Neuron's status to equal its metagraph row")
    assert synced["m1"]["incentive"] > synced["m2"]["incentive"] > 0
    assert synced["v"]["dividends"] > 0 and synced["v"]["validatorPermit"] is True
    assert synced["m1"]["emission"] > 0
    assert synced["idle"]["incentive"] == 0 and synced["idle"]["stake"] == 0

    # Someone stakes on the idle miner from the CLI, with a wallet of their own: the timer
    # brings the new stake into status, and the operator leaves that position alone.
    env = {**os.environ, "SUBNETLAB_HOME": str(tmp_path / "home"),
           "SUBNETLAB_PASSWORD": "pw-for-tests", "SUBNETLAB_LEDGER": ledger.url}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "subnetlab", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("wallet", "new", "--name", "staker")
    cli("faucet", "--name", "staker")
    cli("stake", "add", "--amount", "7", "--hotkey", seen["idle"]["hotkey"], "--name", "staker")
    idle = eventually(lambda: st if (st := status(plane, ns, "neuron", "idle")).get(
        "stake") == 7.0 else {}, WAIT_S, "the CLI's stake in the idle miner's status")
    rows_now = {r["hotkey"]: r for r in metagraph_rows(ledger, netuid)}
    assert rows_now[idle["hotkey"]]["stake"] == 7 * TOKEN
    assert alice_stake_on(ledger, idle["hotkey"]) == 0  # not "corrected" by the operator

    # A registration made on the ledger, outside the cluster: the Subnet counts it.
    before = status(plane, ns, "subnet", "sync")["neurons"]
    assert before == len(names)
    with chain(ledger) as client:
        client.submit(Keypair.dev("alice"), "register",
                      {"netuid": netuid, "hotkey": Keypair.generate().ss58_address})
    eventually(lambda: status(plane, ns, "subnet", "sync").get("neurons") == before + 1,
               WAIT_S, "the Subnet's status to count the outside registration")
    assert plane.kubectl("get", "neurons", "-n", ns, "-o", "name").stdout.count("\n") == 4


# ---- a SIGKILL in the middle of registering ------------------------------------------------


def test_an_operator_killed_mid_registration_resumes_without_duplicates(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    # One registration per block and a tempo that no test outlives: the registrations are
    # spread over several blocks, and no epoch pays anything that would move the stakes.
    apply(plane, ns, subnet("crash", {"hyperparameters": {
        "tempo": 10000, "maxRegistrationsPerBlock": 1, "targetRegistrationsPerInterval": 8,
        "immunityPeriod": 1000}}))
    first = operator_factory(ledger.url)
    netuid = wait_phase(plane, ns, "subnet", "crash", "Ready")["netuid"]
    stakes = {f"v{i}": 3 + i for i in range(3)} | {f"m{i}": 0 for i in range(5)}
    for name, stake in stakes.items():
        role = "validator" if name.startswith("v") else "miner"
        apply(plane, ns, neuron(name, {"subnet": "crash", "role": role, "stake": stake}))

    def occupied() -> list[dict[str, Any]]:
        return [r for r in metagraph_rows(ledger, netuid) if not r["vacant"]]

    eventually(lambda: len(occupied()) >= 1, WAIT_S, "the first registration")
    first.kill()
    with chain(ledger) as client:  # let an extrinsic sent just before the kill land
        height = int(client.chain()["block"])
        eventually(lambda: int(client.chain()["block"]) >= height + 4, WAIT_S, "4 more blocks")
    at_kill = len(occupied())
    assert 1 <= at_kill < len(stakes), f"{at_kill} registered: the kill was not mid-way"

    operator_factory(ledger.url)
    final = {n: wait_phase(plane, ns, "neuron", n, "Starting") for n in stakes}
    rows = occupied()
    hotkeys = [r["hotkey"] for r in rows]
    assert len(rows) == len(stakes) and len(set(hotkeys)) == len(stakes)  # one uid each
    assert sorted(hotkeys) == sorted(st["hotkey"] for st in final.values())
    for name, st in final.items():
        assert neuron_key(plane, ns, name).ss58_address == st["hotkey"]  # the same key
        for kind in ("secret", "deployment", "service"):
            listed = plane.kubectl("get", kind, "-n", ns, "-l", f"subnetlab.io/neuron={name}",
                                   "-o", "name").stdout.split()
            assert len(listed) == 1, (name, kind, listed)
        assert alice_stake_on(ledger, st["hotkey"]) == stakes[name] * TOKEN  # staked once
        assert event_reasons(plane, ns, name).count("Registered") <= 1
    assert status(plane, ns, "subnet", "crash")["neurons"] == len(stakes)


# ---- binding an existing subnet (spec.netuid) --------------------------------------------


def create_on_ledger(ledger: LedgerProcess, owner: Keypair, tempo: int) -> int:
    """A subnet created outside the cluster, as its owner; its netuid."""
    with chain(ledger) as client:
        before = {s["netuid"] for s in client.subnets()}
        client.submit(owner, "create_subnet", {"hyperparameters": {"tempo": tempo}})
        (netuid,) = {s["netuid"] for s in client.subnets()
                     if s["owner"] == owner.ss58_address} - before
    return int(netuid)


def test_a_subnet_binds_an_existing_netuid_checks_its_owner_and_leaves_it_on_deletion(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    alice, bob = Keypair.dev("alice"), Keypair.dev("bob")
    netuid = create_on_ledger(ledger, alice, tempo=30)
    outsider = Keypair.generate().ss58_address  # registered from outside the cluster
    with chain(ledger) as client:
        client.submit(alice, "register", {"netuid": netuid, "hotkey": outsider})
        count = len(client.subnets())
    operator_factory(ledger.url)

    hp = {**FAST["hyperparameters"], "tempo": 25}
    apply(plane, ns, subnet("bound", {"netuid": netuid, "hyperparameters": hp}))
    bound = wait_phase(plane, ns, "subnet", "bound", "Ready")
    assert bound["netuid"] == netuid and conditions(bound)["Created"] == ("True", "Bound")
    assert "Bound" in event_reasons(plane, ns, "bound")
    with chain(ledger) as client:
        assert len(client.subnets()) == count  # nothing created
        info = client.subnet(netuid)
    assert info["owner"] == ALICE and info["hyperparameters"]["tempo"] == 25  # the spec's
    apply(plane, ns, neuron("bm", {"subnet": "bound", "role": "miner"}))
    miner = wait_phase(plane, ns, "neuron", "bm", "Starting")
    assert miner["netuid"] == netuid
    eventually(lambda: status(plane, ns, "subnet", "bound").get("neurons") == 2, WAIT_S,
               "the bound Subnet to count the outsider and its own Neuron")

    # immutable: neither changed, nor removed
    for patch in ({"spec": {"netuid": netuid + 1}}, {"spec": {"netuid": None}}):
        done = plane.kubectl("patch", "subnet", "bound", "-n", ns, "--type=merge",
                             "-p", json.dumps(patch), check=False)
        assert done.returncode != 0 and "spec.netuid" in done.stderr, done.stderr
        assert "is immutable once created" in done.stderr
    added = plane.kubectl("patch", "subnet", "bound", "-n", ns, "--type=merge", "-p",
                          json.dumps({"spec": {"tasks": {"kinds": {"arithmetic": 1}}}}))
    assert added.returncode == 0  # other fields still change

    # someone else's subnet: a permanent error naming the field; the ledger is untouched
    bobs = create_on_ledger(ledger, bob, tempo=40)
    apply(plane, ns, subnet("stolen", {"netuid": bobs, "hyperparameters": hp}))
    stolen = wait_phase(plane, ns, "subnet", "stolen", "Failed")
    assert conditions(stolen)["Ready"] == ("False", "NotOwner")
    assert conditions(stolen)["Created"] == ("False", "NotOwner")
    assert ready_message(stolen) == (f"spec.netuid: subnet {bobs} is owned by "
                                     f"{bob.ss58_address}, not by this Subnet's owner key "
                                     f"{ALICE} (spec.owner)")
    assert stolen.get("netuid") is None
    assert "NotOwner" in event_reasons(plane, ns, "stolen")
    with chain(ledger) as client:
        assert client.subnet(bobs)["hyperparameters"]["tempo"] == 40
    # a netuid another Subnet manages, and one the ledger does not have
    apply(plane, ns, subnet("twin", {"netuid": netuid}))
    twin = wait_phase(plane, ns, "subnet", "twin", "Failed")
    assert ready_message(twin) == (f"spec.netuid: netuid {netuid} is already managed by "
                                   f"Subnet {ns}/bound")
    apply(plane, ns, subnet("ghost", {"netuid": 65000}))
    ghost = wait_phase(plane, ns, "subnet", "ghost", "Failed")
    assert conditions(ghost)["Ready"] == ("False", "UnknownNetuid")
    assert "spec.netuid: the ledger at" in ready_message(ghost)

    # deleting the bound Subnet: its Neuron is deregistered, the subnet stays as it was
    plane.kubectl("delete", "subnet", "twin", "-n", ns, "--wait=true", "--timeout=60s")
    plane.kubectl("delete", "subnet", "bound", "-n", ns, "--wait=true", "--timeout=60s")
    assert gone(plane, ns, "neuron", "bm")
    with chain(ledger) as client:
        info = client.subnet(netuid)
        hotkeys = [r["hotkey"] for r in client.metagraph(netuid)["neurons"]]
    assert info["owner"] == ALICE and info["hyperparameters"]["tempo"] == 25
    assert outsider in hotkeys and miner["hotkey"] not in hotkeys


def test_binding_without_a_dev_key_waits_for_the_owner_key_in_its_secret(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory) -> None:
    ns = kube_namespace
    owner = Keypair.generate()
    with chain(ledger) as client:  # an owner of its own, funded by alice
        client.submit(Keypair.dev("alice"), "transfer",
                      {"dest": owner.ss58_address, "amount": 500 * TOKEN})
    netuid = create_on_ledger(ledger, owner, tempo=30)
    operator_factory(ledger.url)
    apply(plane, ns, subnet("mine", {"netuid": netuid, "owner": {}, **FAST}))
    waiting = eventually(lambda: st if conditions(st := status(plane, ns, "subnet", "mine")).get(
        "Ready", ("", ""))[1] == "OwnerKeyMissing" else {}, WAIT_S, "OwnerKeyMissing")
    assert waiting["phase"] == "Pending"
    assert f"create Secret {ns}/mine-owner with data.mnemonic" in ready_message(waiting)
    assert get(plane, ns, "secret", "mine-owner") is None  # no key generated for it
    assert owner.mnemonic is not None
    plane.kubectl("create", "secret", "generic", "mine-owner", "-n", ns,
                  f"--from-literal=mnemonic={owner.mnemonic}")
    bound = wait_phase(plane, ns, "subnet", "mine", "Ready")
    assert bound["netuid"] == netuid and bound["owner"] == owner.ss58_address


# ---- a sybil: one engine behind several registered hotkeys --------------------------------


def run_pod_miner(deploy: dict[str, Any], secret: dict[str, Any], home: Path,
                  port: int) -> subprocess.Popen[bytes]:
    """The miner container of `deploy`, run here as its pod would run it: the key files of
    the Secret's volume items written where the pod mounts them (below $SUBNETLAB_HOME),
    the container's own args, with this machine's address and a free port for the pod's."""
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volume = next(v for v in pod["volumes"] if v["name"] == "hotkey")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "hotkey")
    env = {e["name"]: e.get("value") for e in container["env"]}
    keys = home / Path(mount["mountPath"]).relative_to(str(env["SUBNETLAB_HOME"]))
    keys.mkdir(parents=True)
    for item in volume["secret"]["items"]:
        (keys / item["path"]).write_bytes(base64.b64decode(secret["data"][item["key"]]))
    args = list(container["args"])
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port)),
                        ("--external-host", "127.0.0.1")):
        args[args.index(flag) + 1] = value
    log = (home / "miner.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "subnetlab", *args], stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "SUBNETLAB_HOME": str(home)})


def test_a_sybil_registers_each_hotkey_serves_them_from_one_pod_and_releases_them_all(
        plane: ControlPlane, kube_namespace: str, ledger: LedgerProcess,
        operator_factory: OperatorFactory, tmp_path: Path) -> None:
    ns = kube_namespace
    op = operator_factory(ledger.url)
    apply(plane, ns, subnet("syb", FAST))
    apply(plane, ns, neuron("sy", {"subnet": "syb", "role": "miner", "behaviour": "sybil",
                                   "stake": 3, "miner": {"sybilHotkeys": 2}}))
    st = wait_phase(plane, ns, "neuron", "sy", "Starting")
    netuid = st["netuid"]
    hotkeys, uids = [st["hotkey"], *st["sybilHotkeys"]], [st["uid"], *st["sybilUids"]]
    assert len(set(hotkeys)) == 3 and len(set(uids)) == 3
    rows = {r["hotkey"]: r for r in metagraph_rows(ledger, netuid)}
    assert [rows[h]["uid"] for h in hotkeys] == uids  # registered, as status says
    assert alice_stake_on(ledger, st["hotkey"]) == 3 * TOKEN  # the neuron is staked once:
    assert [alice_stake_on(ledger, h) for h in st["sybilHotkeys"]] == [0, 0]  # its own key
    registered = conditions(st)["Registered"]
    assert registered == ("True", "Registered")
    assert f"sybil uids {st['sybilUids']}" in next(
        c["message"] for c in st["conditions"] if c["type"] == "Registered")
    reasons = event_reasons(plane, ns, "sy")
    assert reasons.count("Registered") == 3, reasons

    # the further keys sit in the neuron's Secret, never in a log
    secret = get(plane, ns, "secret", "sy-hotkey") or {}
    files = {k: json.loads(base64.b64decode(v)) for k, v in secret["data"].items()
             if k != "ss58Address"}
    assert sorted(files) == ["default-sybil-1", "default-sybil-2", "hotkey"]
    assert [files[f"default-sybil-{i}"]["ss58_address"] for i in (1, 2)] == st["sybilHotkeys"]
    assert all(f["mnemonic"] not in op.text() for f in files.values())

    # the pod's miner, run as the pod would, serves all three hotkeys from one process
    deploy = get(plane, ns, "deployment", "sy") or {}
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--sybil-key") + 1] == "default-sybil-1"
    port = free_port()
    miner = run_pod_miner(deploy, secret, tmp_path / "pod", port)
    try:
        def served() -> list[dict[str, Any]]:
            assert miner.poll() is None, (tmp_path / "pod" / "miner.log").read_text()
            by_hotkey = {r["hotkey"]: r for r in metagraph_rows(ledger, netuid)}
            axons = [by_hotkey[h]["axon"] for h in hotkeys]
            return axons if all(a and a["port"] == port for a in axons) else []

        eventually(served, WAIT_S, "the pod's miner to serve an axon for every hotkey")

        def healthy() -> dict[str, Any]:  # the axon is published before the server listens
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except httpx.HTTPError:
                return {}
            found: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
            return found

        health = eventually(healthy, WAIT_S, "the pod's miner to answer /healthz")
        assert health["hotkeys"] == hotkeys and health["behaviour"] == "sybil", health
    finally:
        miner.terminate()
        miner.wait(30)

    # fewer hotkeys: the one no longer asked for is deregistered, then leaves the Secret
    plane.kubectl("patch", "neuron", "sy", "-n", ns, "--type=merge", "-p",
                  json.dumps({"spec": {"miner": {"sybilHotkeys": 1}}}))
    fewer = eventually(lambda: s if len((s := status(plane, ns, "neuron", "sy")).get(
        "sybilHotkeys") or []) == 1 and s.get("observedGeneration") == 2 else {}, WAIT_S,
        "status with one sybil hotkey")
    assert fewer["sybilHotkeys"] == st["sybilHotkeys"][:1]
    assert fewer["sybilUids"] == st["sybilUids"][:1]
    left = {r["hotkey"] for r in metagraph_rows(ledger, netuid)}
    assert st["sybilHotkeys"][0] in left and st["sybilHotkeys"][1] not in left
    eventually(lambda: "default-sybil-2" not in (get(plane, ns, "secret", "sy-hotkey") or {})[
        "data"], WAIT_S, "the released key to leave the Secret")
    assert "default-sybil-1" in (get(plane, ns, "secret", "sy-hotkey") or {})["data"]

    # deletion deregisters every hotkey and returns the stake
    plane.kubectl("delete", "neuron", "sy", "-n", ns, "--wait=true", "--timeout=60s")
    left = {r["hotkey"] for r in metagraph_rows(ledger, netuid)}
    assert not left & set(hotkeys), left & set(hotkeys)
    assert alice_stake_on(ledger, st["hotkey"]) == 0
    released = [e["message"] for e in events(plane, ns)
                if e["involvedObject"]["name"] == "sy" and e["reason"] == "Deregistered"]
    # Each hotkey left exactly once (1 shrink + 2 deletion). A finalizer pass that kopf runs
    # again (its progress patch lost to a concurrent status write) repeats nothing on the
    # chain: it only reports, for a hotkey already gone, that it holds no uid any more.
    left_once = [m for m in released if " left netuid " in m]
    assert sorted(m.split(" left netuid ")[0].split()[-1] for m in left_once) == sorted(
        hotkeys), released
    assert all(" holds no uid on netuid " in m for m in released if m not in left_once), released

