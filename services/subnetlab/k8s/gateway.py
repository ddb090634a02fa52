"""The customer API keys of a validator's organic gateway, in whatever namespace it runs.

The keys live in one Secret (`OperatorConfig.gateway_keys_secret`, key `api-keys`,
comma-separated): the Helm chart creates it in its release namespace, which is rarely the
namespace of the Neurons (`kubectl apply -n demo ...`), and a pod can only mount Secrets of
its own namespace. So each validator gets a copy of its own, `<neuron>-gateway-keys`, in its
namespace, owned by the Neuron (the garbage collector removes it with the Neuron) and
rewritten on every pass, which keeps it in step with the original.

Where the keys come from, first found wins:
1. the Secret of that name in the validator's own namespace (a team keeps its own keys);
2. the Secret of that name in `OperatorConfig.gateway_keys_namespace` (the chart's release
   namespace).
With neither, the copy is not written (an older copy stays) and the Neuron says so in
`KeysReady=False GatewayKeysMissing`; the next pass after the Secret appears copies it.

The pod template carries where the keys came from and that Secret's resourceVersion
(`subnetlab.io/gateway-keys-source`), never the keys or a hash of them: a rotated key
changes the version, which rolls the validator's pod onto the new keys.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GATEWAY_KEYS_KEY = "api-keys"
SOURCE_ANNOTATION = "subnetlab.io/gateway-keys-source"
"""On the copy and on the validator's pod template: `NAMESPACE/NAME@RESOURCEVERSION` of
the Secret the keys were copied from."""
MISSING_REASON = "GatewayKeysMissing"

Body = dict[str, Any]


def gateway_secret_name(neuron: str) -> str:
    """The validator's own copy of the keys, in its namespace."""
    return f"{neuron}-gateway-keys"


def key_sources(namespace: str, secret: str, fallback_namespace: str) -> list[tuple[str, str]]:
    """(namespace, name) of the Secrets a validator in `namespace` may take its keys from,
    in order: its own namespace's, then the fallback (operator's) namespace's."""
    sources = [(namespace, secret)]
    if fallback_namespace and fallback_namespace != namespace:
        sources.append((fallback_namespace, secret))
    return sources


@dataclass(frozen=True)
class FoundKeys:
    """The keys to copy: the `api-keys` entry (base64, as the API holds it) and where it
    came from (`NAMESPACE/NAME@RESOURCEVERSION`)."""

    data: str
    source: str


@dataclass(frozen=True)
class GatewayKeys:
    """A validator's copy after a pass: where what it holds came from (empty: there is no
    copy), and, when no source holds keys now, the message saying what to create."""

    source: str
    problem: str | None = None


def usable_keys(secret: Mapping[str, Any] | None) -> str | None:
    """The base64 `api-keys` entry of a Secret, or None when it has no key in it (absent,
    empty, blank, or not base64): such a Secret is passed over like a missing one."""
    if not secret:
        return None
    value = (secret.get("data") or {}).get(GATEWAY_KEYS_KEY)
    if not isinstance(value, str) or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return value if any(key.strip() for key in decoded.split(",")) else None


def choose_keys(candidates: Sequence[tuple[tuple[str, str], Mapping[str, Any] | None]]
                ) -> FoundKeys | None:
    """The first candidate ((namespace, name), the Secret as read or None) holding keys."""
    for (namespace, name), secret in candidates:
        value = usable_keys(secret)
        if value is not None and secret is not None:
            version = (secret.get("metadata") or {}).get("resourceVersion", "")
            return FoundKeys(value, f"{namespace}/{name}@{version}")
    return None


def missing_message(sources: Sequence[tuple[str, str]]) -> str:
    """The KeysReady message when no source holds keys: what to create, and where."""
    where = " or ".join(f"{ns}/{name}" for ns, name in sources)
    shared_ns, name = sources[-1]  # the operator's namespace when there is one
    return (f"no Secret {where} with an api-keys entry: create one, e.g. `kubectl create "
            f"secret generic {name} -n {shared_ns} --from-literal=api-keys=KEY1,KEY2`")


def gateway_keys_secret(neuron: str, namespace: str, found: FoundKeys,
                        labels: Mapping[str, str], owner: Body) -> Body:
    """The validator's copy of the keys, owned by its Neuron."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": gateway_secret_name(neuron), "namespace": namespace,
                     "labels": dict(labels), "annotations": {SOURCE_ANNOTATION: found.source},
                     "ownerReferences": [owner]},
        "data": {GATEWAY_KEYS_KEY: found.data},
    }
