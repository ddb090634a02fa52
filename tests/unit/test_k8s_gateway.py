"""Gateway API keys in a validator's own namespace: where they are copied from, the copy
itself, and the operator step that writes it (against an in-memory API server)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.context import Operator
from subnetlab.k8s.gateway import (
    SOURCE_ANNOTATION,
    FoundKeys,
    choose_keys,
    gateway_keys_secret,
    gateway_secret_name,
    key_sources,
    missing_message,
    usable_keys,
)
from subnetlab.k8s.metrics import OperatorMetrics
from subnetlab.k8s.resources import labels_for, owner_reference

NEURON = {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
          "metadata": {"name": "validator-0", "namespace": "demo", "uid": "u-7"}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(namespace: str, name: str, keys: str | None, version: str = "5") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version},
            "data": {} if keys is None else {"api-keys": b64(keys)}}


def test_sources_are_the_own_namespace_then_the_operators() -> None:
    assert key_sources("demo", "gk", "lab") == [("demo", "gk"), ("lab", "gk")]
    assert key_sources("lab", "gk", "lab") == [("lab", "gk")]  # the release namespace itself
    assert key_sources("demo", "gk", "") == [("demo", "gk")]  # no fallback configured


@pytest.mark.parametrize("data", [None, {}, {"api-keys": ""}, {"api-keys": b64(" , ")},
                                  {"api-keys": "%%%not-base64"}, {"other": b64("k1")}])
def test_a_secret_without_a_key_in_it_is_passed_over(data: dict[str, str] | None) -> None:
    body = None if data is None else {"metadata": {}, "data": data}
    assert usable_keys(body) is None


def test_the_first_source_holding_keys_wins() -> None:
    own, shared = ("demo", "gk"), ("lab", "gk")
    assert choose_keys([(own, None), (shared, secret("lab", "gk", "k1,k2", "812"))]) == (
        FoundKeys(b64("k1,k2"), "lab/gk@812"))
    assert choose_keys([(own, secret("demo", "gk", "team-key", "9")),
                        (shared, secret("lab", "gk", "k1"))]) == FoundKeys(b64("team-key"),
                                                                            "demo/gk@9")
    assert choose_keys([(own, secret("demo", "gk", "")), (shared, None)]) is None


def test_the_copy_is_owned_by_the_neuron_and_holds_only_the_keys() -> None:
    found = FoundKeys(b64("k1,k2"), "lab/gk@812")
    body = gateway_keys_secret("validator-0", "demo", found,
                               labels_for("validator-0", "demo", "validator"),
                               owner_reference(NEURON))
    assert body["metadata"]["name"] == gateway_secret_name("validator-0") == (
        "validator-0-gateway-keys")
    assert body["metadata"]["namespace"] == "demo"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-7"
    assert body["metadata"]["annotations"] == {SOURCE_ANNOTATION: "lab/gk@812"}
    assert body["data"] == {"api-keys": b64("k1,k2")} and "stringData" not in body
    assert "k1" not in str(body["metadata"])  # the keys are in data only


def test_the_missing_message_names_both_places_and_how_to_fix_it() -> None:
    message = missing_message([("demo", "gk"), ("lab", "gk")])
    assert message.startswith("no Secret demo/gk or lab/gk with an api-keys entry")
    assert "kubectl create secret generic gk -n lab --from-literal=api-keys=" in message


class FakeKube:
    """Secrets in memory: get and server-side apply, as the operator uses them."""

    def __init__(self, *secrets: dict[str, Any]) -> None:
        self.objects = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets}
        self.reads: list[tuple[str, str]] = []

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind == "Secret"
        self.reads.append((namespace, name))
        return self.objects.get((namespace, name))

    async def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        self.objects[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return body


def operator(kube: FakeKube) -> Operator:
    config = OperatorConfig(gateway_keys_secret="gk", gateway_keys_namespace="lab")
    return Operator(config, None, kube, OperatorMetrics(), lambda *_: None)  # type: ignore[arg-type]


def copy_for(op: Operator) -> Any:
    return asyncio.run(op.gateway_keys(NEURON, "validator-0", "demo",
                                       labels_for("validator-0", "demo", "validator")))


def test_the_operator_copies_the_release_namespaces_keys_into_the_neurons() -> None:
    kube = FakeKube(secret("lab", "gk", "k1,k2", "812"))
    result = copy_for(operator(kube))
    assert (result.source, result.problem) == ("lab/gk@812", None)
    copy = kube.objects[("demo", "validator-0-gateway-keys")]
    assert copy["data"]["api-keys"] == b64("k1,k2")
    assert kube.reads == [("demo", "gk"), ("lab", "gk")]
    # rotated at the source: the copy follows, and so does the source on the pod template
    kube.objects[("lab", "gk")] = secret("lab", "gk", "k3", "900")
    assert copy_for(operator(kube)).source == "lab/gk@900"
    assert kube.objects[("demo", "validator-0-gateway-keys")]["data"]["api-keys"] == b64("k3")


def test_a_namespace_with_keys_of_its_own_keeps_them() -> None:
    kube = FakeKube(secret("demo", "gk", "team-key", "3"), secret("lab", "gk", "k1"))
    assert copy_for(operator(kube)).source == "demo/gk@3"
    assert kube.reads == [("demo", "gk")]  # the release namespace's is not even read
    assert kube.objects[("demo", "validator-0-gateway-keys")]["data"]["api-keys"] == (
        b64("team-key"))


def test_no_keys_anywhere_is_reported_and_an_older_copy_stays() -> None:
    kube = FakeKube()
    result = copy_for(operator(kube))
    assert result.source == "" and result.problem is not None
    assert "no Secret demo/gk or lab/gk" in result.problem
    assert ("demo", "validator-0-gateway-keys") not in kube.objects
    older = gateway_keys_secret("validator-0", "demo", FoundKeys(b64("k1"), "lab/gk@812"),
                                {}, owner_reference(NEURON))
    kube.objects[("demo", "validator-0-gateway-keys")] = older
    result = copy_for(operator(kube))
    assert result.source == "lab/gk@812" and result.problem  # the pod is not rolled
    assert kube.objects[("demo", "validator-0-gateway-keys")] is older
