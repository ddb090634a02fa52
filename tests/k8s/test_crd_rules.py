"""The CRDs' CEL rules against the real API server, each next to the model's own check.

Why both in one test: the rules are written twice on purpose (a pydantic validator for
`subnetlab up` and the operator, a CEL rule for the API server); a case here must be refused
by both, naming the same field, or accepted by both, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from subnetlab.specs import Neuron, SpecError, Subnet, validate_resource
from tests.k8s.conftest import ControlPlane

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def crds(kube_controlplane: ControlPlane) -> ControlPlane:
    kube_controlplane.kubectl("apply", "-f", str(ROOT / "manifests" / "crds"))
    kube_controlplane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                              "crd/subnets.subnetlab.io", "crd/neurons.subnetlab.io")
    return kube_controlplane


def _doc(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "subnetlab.io/v1alpha1", "kind": kind, "metadata": {"name": "x"},
            "spec": spec}


def _miner(behaviour: str = "honest", **miner: Any) -> dict[str, Any]:
    return _doc("Neuron", {"subnet": "s", "role": "miner", "behaviour": behaviour,
                           "miner": miner})


def _validator(behaviour: str = "honest", **validator: Any) -> dict[str, Any]:
    return _doc("Neuron", {"subnet": "s", "role": "validator", "behaviour": behaviour,
                           "validator": validator})


def _resources(**resources: Any) -> dict[str, Any]:
    return _doc("Neuron", {"subnet": "s", "role": "miner", "resources": resources})


def _hyper(**values: Any) -> dict[str, Any]:
    return _doc("Subnet", {"hyperparameters": values})


REFUSED = [
    (_miner(backend={"type": "openai", "url": "", "model": "m"}), "spec.miner.backend.url"),
    (_miner(backend={"type": "openai", "url": "ftp://engine", "model": "m"}),
     "spec.miner.backend.url"),
    (_miner(backend={"type": "openai", "url": "engine:8000", "model": "m"}),
     "spec.miner.backend.url"),
    (_miner(backend={"type": "vllm", "model": "m", "url": "http://"}), "spec.miner.backend.url"),
    (_miner("copycat", copyFrom="not a url"), "spec.miner.copyFrom"),
    (_miner(copyFrom="http://engine:8000"), "spec.miner"),  # only for copycat
    (_miner("passthrough", copyFrom="http://engine:8000",
            backend={"type": "openai", "url": "http://engine:8000", "model": "m"}),
     "spec.miner"),  # only for copycat, whatever the other behaviour
    (_doc("Neuron", {"subnet": "s", "role": "miner", "behaviour": "sybil"}),
     "spec.miner.sybilHotkeys"),
    (_miner("sybil", concurrency=2), "spec.miner.sybilHotkeys"),
    (_miner("sybil", sybilHotkeys=0), "spec.miner.sybilHotkeys"),
    (_miner("sybil", sybilHotkeys=65), "spec.miner.sybilHotkeys"),
    (_miner(sybilHotkeys=2), "spec.miner.sybilHotkeys"),  # only for sybil
    (_miner("passthrough"), "spec.miner.backend.type"),  # the default backend is sim
    (_doc("Neuron", {"subnet": "s", "role": "miner", "behaviour": "passthrough"}),
     "spec.miner.backend.type"),
    (_miner("passthrough", backend={"type": "vllm", "model": "m"}), "spec.miner.backend.type"),
    (_miner(backend={"type": "vllm", "model": "m", "args": ["--disable-log-stats"]}),
     "spec.miner.backend.args"),
    (_miner(backend={"type": "vllm", "model": "m", "args": ["--disable-log-stats=1"]}),
     "spec.miner.backend.args"),
    (_validator("cabal"), "spec.validator"),
    (_validator("cabal", cabal=[]), "spec.validator"),
    (_validator("cabal", cabal=[70000]), "spec.validator.cabal[0]"),
    (_validator("cabal", cabal=[-1]), "spec.validator.cabal[0]"),
    (_validator(cabal=[1]), "spec.validator"),  # only for cabal
    (_hyper(alphaLow=0.95, alphaHigh=0.9), "spec.hyperparameters.alphaLow"),
    (_hyper(minBurn=10, burn=5, maxBurn=20), "spec.hyperparameters.minBurn"),
    (_hyper(minBurn=1, burn=50, maxBurn=20), "spec.hyperparameters.burn"),
    (_doc("Subnet", {"tasks": {"kinds": {"arithmetic": 0, "sorting": 0}}}), "spec.tasks.kinds"),
    (_doc("Subnet", {"tasks": {"kinds": {}}}), "spec.tasks.kinds"),
    (_validator(reference={"url": "http://r:1"}), "spec.validator.reference.url"),
    (_validator(reference={"backend": "openai"}), "spec.validator.reference.url"),
    (_validator(reference={"backend": "vllm", "url": "r:1"}), "spec.validator.reference.url"),
    (_hyper(tempo=True), "spec.hyperparameters.tempo"),  # strict types: no coercion
    (_doc("Neuron", {"subnet": "s", "role": "miner", "stake": "5"}), "spec.stake"),
    (_resources(requests={"cpu": "abc"}), "spec.resources.requests.cpu"),
    (_resources(requests={"cpu": "100Mi"}), "spec.resources.requests.cpu"),
    (_resources(requests={"cpu": 1}), "spec.resources.requests.cpu"),  # strict: a string
    (_resources(limits={"memory": "1.5GB"}), "spec.resources.limits.memory"),
    (_resources(requests={"memory": "2Gi"}), "spec.resources.requests.memory"),  # limit 1Gi
    (_resources(requests={"memory": "1100M"}), "spec.resources.requests.memory"),
    (_resources(limits={"memory": "64Mi"}), "spec.resources.requests.memory"),  # asks 128Mi
    (_resources(requests={"cpu": "2"}, limits={"cpu": "500m"}), "spec.resources.requests.cpu"),
    (_resources(limits={"cpu": "50m"}), "spec.resources.requests.cpu"),  # asks 100m
]

ACCEPTED = [
    _miner(backend={"type": "openai", "url": "http://engine.ns.svc:8000/v1", "model": "m"}),
    _miner(backend={"type": "openai", "url": "local-sim-engine", "model": "m"}),
    _miner(backend={"type": "vllm", "model": "m", "url": "https://vllm:8000"}),
    _miner(backend={"type": "vllm", "model": "m"}),
    _miner("copycat", copyFrom="http://engine:8000"),
    _miner("sybil", sybilHotkeys=3),
    _miner("passthrough", backend={"type": "openai", "url": "http://engine:8000", "model": "m"}),
    _miner(backend={"type": "vllm", "model": "m",
                    "args": ["--disable-log-requests", "--max-model-len", "4096"]}),
    _validator("cabal", cabal=[0, 3, 65534]),
    _validator(reference={"backend": "vllm", "url": "http://vllm:8000", "model": "qwen"}),
    _hyper(alphaLow=0.9, alphaHigh=0.9, minBurn=5, burn=5, maxBurn=5),
    _doc("Subnet", {"tasks": {"kinds": {"string": 2, "sorting": 0}}}),
    _resources(requests={"cpu": "10m", "memory": "64Mi"}),
    _resources(requests={"cpu": "0.5", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"}),
    _resources(requests={"memory": "1G"}),  # 10**9 bytes, under the default 1Gi limit
    _resources(limits={"cpu": "100m"}),  # equal to the default request
]


def _model_error(doc: dict[str, Any]) -> str | None:
    model = Subnet if doc["kind"] == "Subnet" else Neuron
    try:
        validate_resource(model, doc, "case")
    except SpecError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(("doc", "field"), REFUSED, ids=lambda v: json.dumps(v)[:60])
def test_the_api_server_and_the_model_refuse_naming_the_field(
        crds: ControlPlane, kube_namespace: str, doc: dict[str, Any], field: str) -> None:
    done = crds.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(doc),
                        check=False)
    assert done.returncode != 0, f"the API server stored {doc}"
    assert f"{field}:" in done.stderr or f"{field}[" in done.stderr, done.stderr
    model = _model_error(doc)
    assert model is not None, f"the model accepts {doc}"
    # the model names the same field (its list indices are dotted: cabal.0)
    assert field.replace("[", ".").replace("]", "") in model, model


@pytest.mark.parametrize("doc", ACCEPTED, ids=lambda v: json.dumps(v)[:60])
def test_the_api_server_and_the_model_accept(crds: ControlPlane, kube_namespace: str,
                                             doc: dict[str, Any]) -> None:
    assert _model_error(doc) is None
    done = crds.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(doc),
                        check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("example", sorted((ROOT / "manifests" / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_the_bundled_examples_pass_the_api_server(crds: ControlPlane, kube_namespace: str,
                                                  example: Path) -> None:
    """What `subnetlab up` runs, the API server stores too (the model's side is
    tests/unit/test_specs.py); `--dry-run=server` runs every admission check."""
    done = crds.kubectl("apply", "--dry-run=server", "-n", kube_namespace, "-f", str(example),
                        check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == done.stdout.count("\n") >= 2, done.stdout
