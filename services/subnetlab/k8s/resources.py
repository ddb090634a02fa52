"""The objects a Neuron or Subnet owns: key Secrets, a Deployment and a Service per neuron.

Pure builders: plain dicts in, plain dicts out, applied by `subnetlab.k8s.kube` with
server-side apply (so applying the same body twice, or after an operator restart, changes
nothing and duplicates nothing). Every object carries an owner reference to the resource
that made it, so the garbage collector removes it with its owner.

Pods by role:
- a `sim` or `openai` miner: the miner container alone;
- a `vllm` miner: a vLLM OpenAI server (GPU limits, node selector, tolerations, runtime
  class, a startup probe long enough to download and load a model) plus the miner sidecar,
  which reaches vLLM over the pod's loopback;
- a validator: the validator loop with its organic gateway (one process, one port), its
  customer API keys from its own copy of the gateway-keys Secret (`subnetlab.k8s.gateway`).

Resources: the `miner` or `validator` container has the Neuron's `spec.resources` (default
requests 100m CPU and 128Mi, a 1Gi memory limit). A `vllm` miner's `vllm` container does
not: it requests and is limited to its backend's `memory` and `gpus` (equal requests and
limits: an engine that holds a GPU and a model must not be the first evicted), so
`spec.resources` there sizes only the miner sidecar.

Security: every container runs as uid/gid 10001 (`NON_ROOT`, the image's user), without
privilege escalation or capabilities, under the `RuntimeDefault` seccomp profile: what
the `restricted` Pod Security Standard asks, the vLLM container included (a GPU reaches
it through the device plugin's `nvidia.com/gpu` limit and the runtime class, neither of
which needs root). The subnetlab containers also have a read-only root file system; what
they write goes to emptyDirs: `$SUBNETLAB_HOME` (/var/run/subnetlab, where a validator
without `--redis-url` keeps its embedded Redis, under `$SUBNETLAB_HOME/ledger`) and
`$HOME` (/tmp). vLLM keeps a writable root (it writes caches in places no flag
moves), with its model cache, `$HOME` and `/dev/shm` on emptyDirs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.gateway import GATEWAY_KEYS_KEY, SOURCE_ANNOTATION, gateway_secret_name
from subnetlab.k8s.keys import (
    ADDRESS_ANNOTATION,
    HOTKEY_KEY,
    HOTKEY_NAME,
    SYBIL_ADDRESSES_ANNOTATION,
    WALLET_NAME,
    encoded,
    sybil_secret_keys,
)
from subnetlab.neuron.command import key_args, role_args
from subnetlab.protocol.drain import DEFAULT_DRAIN_SECONDS, stop_bound
from subnetlab.specs import VLLM_METRICS_FLAG, KeySource, NeuronSpec, TaskMix, VllmBackendSpec

Body = dict[str, Any]

LABEL_NEURON = "subnetlab.io/neuron"
LABEL_SUBNET = "subnetlab.io/subnet"
LABEL_ROLE = "subnetlab.io/role"
COMMON_LABELS = {"app.kubernetes.io/part-of": "subnetlab",
                 "app.kubernetes.io/managed-by": "subnetlab-operator"}

HOME = "/var/run/subnetlab"
"""$SUBNETLAB_HOME of neuron containers: an emptyDir (writable as uid 10001) holding a
validator's embedded Redis (`ledger/`), with the hotkey Secret mounted read-only below it."""
TMP = "/tmp"
"""$HOME of every container: an emptyDir (caches)."""
NON_ROOT = 10001
"""The uid and gid of every container: the `subnetlab` user of the Dockerfile."""
KEY_DIR = f"{HOME}/wallets/{WALLET_NAME}/hotkeys"
AXON_PORT = 8091
GATEWAY_PORT = 8092
VLLM_PORT = 8000
VLLM_STARTUP_BUDGET_S = 1800
"""How long vLLM may take to download and load a model before the pod is restarted."""
TERMINATION_GRACE_S = math.ceil(stop_bound(DEFAULT_DRAIN_SECONDS)) + 20
"""The pods' terminationGracePeriodSeconds: the neuron drains its requests in flight and
exits within `stop_bound` of SIGTERM (protocol/drain.py), well before the kubelet's
SIGKILL; the rest is for vLLM's own shutdown beside it."""


def owner_reference(owner: Mapping[str, Any]) -> Body:
    """A controller owner reference to `owner` (a Subnet or Neuron as the API returns it)."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def labels_for(neuron: str, subnet: str, role: str) -> dict[str, str]:
    return {**COMMON_LABELS, LABEL_NEURON: neuron, LABEL_SUBNET: subnet, LABEL_ROLE: role}


def key_secret(name: str, namespace: str, string_data: Mapping[str, str], address: str,
               labels: Mapping[str, str], owner: Body) -> Body:
    """A key Secret (see `subnetlab.k8s.keys` for what it holds), base64 `data` so that
    creating it and server-side applying it write the same field."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                     "annotations": {ADDRESS_ANNOTATION: address},
                     "ownerReferences": [owner]},
        "data": encoded(string_data),
    }


@dataclass(frozen=True)
class NeuronWorkload:
    """What a neuron's Deployment and Service are built from."""

    name: str
    namespace: str
    subnet: str
    spec: NeuronSpec
    tasks: TaskMix
    netuid: int
    hotkey: str
    secret: str
    owner: Body
    config: OperatorConfig
    sybils: tuple[str, ...] = ()
    """A sybil's further hotkeys (SS58), whose files sit in `secret` beside the hotkey."""
    gateway_keys_source: str = ""
    """A validator's: where its copy of the gateway keys came from (`NAMESPACE/NAME@VERSION`,
    `subnetlab.k8s.gateway`); empty while there is none."""

    @property
    def labels(self) -> dict[str, str]:
        return labels_for(self.name, self.subnet, self.spec.role)

    @property
    def selector(self) -> dict[str, str]:
        return {LABEL_NEURON: self.name}

    @property
    def port(self) -> int:
        return AXON_PORT if self.spec.role == "miner" else GATEWAY_PORT

    @property
    def port_name(self) -> str:
        return "axon" if self.spec.role == "miner" else "gateway"

    @property
    def endpoint(self) -> str:
        """The in-cluster URL of the neuron's Service."""
        return f"http://{self.name}.{self.namespace}.svc:{self.port}"

    def metadata(self) -> Body:
        return {"name": self.name, "namespace": self.namespace, "labels": self.labels,
                "ownerReferences": [self.owner]}


def pod_security() -> Body:
    """A pod's securityContext under the `restricted` Pod Security Standard."""
    return {"runAsNonRoot": True, "runAsUser": NON_ROOT, "runAsGroup": NON_ROOT,
            "fsGroup": NON_ROOT, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security(read_only_root: bool) -> Body:
    """A container's securityContext under the `restricted` Pod Security Standard."""
    return {"runAsNonRoot": True, "runAsUser": NON_ROOT, "runAsGroup": NON_ROOT,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": read_only_root,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _http_probe(port: str, path: str, period: int, failures: int) -> Body:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": 5}


def _neuron_container(w: NeuronWorkload, backend_url: str | None) -> Body:
    """The subnetlab process: `subnetlab miner serve` or `subnetlab validator run`."""
    args = [*role_args(w.spec, w.tasks, backend_url),
            "--netuid", str(w.netuid), "--ledger", w.config.ledger_for_pods,
            *key_args(KeySource(wallet=WALLET_NAME, hotkey=HOTKEY_NAME), HOTKEY_NAME,
                      len(w.sybils)),
            "--host", "0.0.0.0", "--port", str(w.port), "--log-level", "info"]
    env: list[Body] = [{"name": "SUBNETLAB_HOME", "value": HOME}, {"name": "HOME", "value": TMP}]
    if w.spec.role == "miner":
        env.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        args += ["--external-host", "$(POD_IP)"]
    else:
        if w.config.redis_url:
            args += ["--redis-url", w.config.redis_url]
        env.append({"name": "SUBNETLAB_API_KEYS", "valueFrom": {"secretKeyRef": {
            "name": gateway_secret_name(w.name), "key": GATEWAY_KEYS_KEY}}})
    return {
        "name": w.spec.role,
        "image": w.config.image,
        "imagePullPolicy": w.config.image_pull_policy,
        "command": ["subnetlab"],
        "args": args,
        "env": env,
        "ports": [{"name": w.port_name, "containerPort": w.port, "protocol": "TCP"}],
        "readinessProbe": _http_probe(w.port_name, "/healthz", 5, 3),
        "livenessProbe": _http_probe(w.port_name, "/healthz", 20, 6),
        "resources": w.spec.resources.as_kubernetes(),
        "securityContext": container_security(read_only_root=True),
        "volumeMounts": [{"name": "home", "mountPath": HOME},
                         {"name": "hotkey", "mountPath": KEY_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": TMP}],
    }


def _vllm_container(backend: VllmBackendSpec) -> Body:
    """vLLM's OpenAI server with the GPUs and memory the spec asks for."""
    limits: dict[str, str] = {"memory": backend.memory}
    if backend.gpus:
        limits["nvidia.com/gpu"] = str(backend.gpus)
    return {
        "name": "vllm",
        "image": backend.image,
        "args": ["--model", backend.model, "--served-model-name", backend.model,
                 "--host", "0.0.0.0", "--port", str(VLLM_PORT),
                 VLLM_METRICS_FLAG, *backend.args],  # the miner's engine seconds
        "env": [{"name": "HF_HOME", "value": "/cache/huggingface"},
                {"name": "HOME", "value": TMP}],
        "ports": [{"name": "vllm", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "startupProbe": _http_probe("vllm", "/health", 10, VLLM_STARTUP_BUDGET_S // 10),
        "readinessProbe": _http_probe("vllm", "/health", 10, 3),
        "livenessProbe": _http_probe("vllm", "/health", 30, 4),
        "resources": {"requests": dict(limits), "limits": limits},
        "securityContext": container_security(read_only_root=False),
        "volumeMounts": [{"name": "model-cache", "mountPath": "/cache"},
                         {"name": "dshm", "mountPath": "/dev/shm"},
                         {"name": "tmp", "mountPath": TMP}],
    }


def deployment(w: NeuronWorkload) -> Body:
    """The neuron's Deployment: one replica, replaced (never surged: two pods must not sign
    with one hotkey at the same time)."""
    backend = w.spec.miner.backend if w.spec.miner else None
    containers: list[Body] = []
    key_files = [{"key": HOTKEY_KEY, "path": HOTKEY_NAME},
                 *({"key": name, "path": name} for name in sybil_secret_keys(len(w.sybils)))]
    volumes: list[Body] = [
        {"name": "hotkey", "secret": {"secretName": w.secret, "defaultMode": 0o440,
                                      "items": key_files}},
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    pod: Body = {"automountServiceAccountToken": False, "enableServiceLinks": False,
                 "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                 "securityContext": pod_security()}
    if isinstance(backend, VllmBackendSpec):
        containers.append(_vllm_container(backend))
        containers.append(_neuron_container(w, f"http://127.0.0.1:{VLLM_PORT}"))
        volumes += [{"name": "model-cache", "emptyDir": {}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
        if backend.node_selector:
            pod["nodeSelector"] = dict(backend.node_selector)
        if backend.tolerations:
            pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True)
                                  for t in backend.tolerations]
        if backend.runtime_class_name:
            pod["runtimeClassName"] = backend.runtime_class_name
    else:
        url = backend.url if backend is not None and backend.type == "openai" else None
        containers.append(_neuron_container(w, url))
    annotations = {ADDRESS_ANNOTATION: w.hotkey}
    if w.sybils:  # new keys in the Secret: a new pod that loads them
        annotations[SYBIL_ADDRESSES_ANNOTATION] = ",".join(w.sybils)
    if w.gateway_keys_source:  # rotated gateway keys: a new pod that reads them
        annotations[SOURCE_ANNOTATION] = w.gateway_keys_source
    template_meta = {"labels": w.labels, "annotations": annotations}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": w.metadata(),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": w.selector},
            "template": {"metadata": template_meta,
                         "spec": {**pod, "containers": containers, "volumes": volumes}},
        },
    }


def service(w: NeuronWorkload) -> Body:
    """The neuron's Service: the miner's axon or the validator's gateway."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": w.metadata(),
        "spec": {"selector": w.selector, "ports": [
            {"name": w.port_name, "port": w.port, "targetPort": w.port_name,
             "protocol": "TCP"}]},
    }
