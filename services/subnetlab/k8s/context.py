"""What every reconcile step shares: clients, settings, outcomes, keys and status writes.

The steps (`subnetlab.k8s.subnets`, `subnetlab.k8s.neurons`) never import kopf: they
raise `Retry` (try again after a delay: the ledger is unreachable, a Subnet is not ready
yet) or `Fail` (the spec itself is wrong: nothing will change until it does), and
`subnetlab.k8s.handlers` turns those into kopf's temporary and permanent errors. That
keeps the steps testable without an operator framework, and kopf replaceable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.gateway import (
    SOURCE_ANNOTATION,
    GatewayKeys,
    choose_keys,
    gateway_keys_secret,
    gateway_secret_name,
    key_sources,
    missing_message,
)
from subnetlab.k8s.keys import (
    KeyMaterialError,
    SybilKeys,
    cluster_key_problem,
    encoded,
    key_from_secret,
    owner_secret_name,
    resolve_key,
    resolve_sybil_keys,
    secret_data,
)
from subnetlab.k8s.kube import Kube, KubeError
from subnetlab.k8s.ledger import Ledger
from subnetlab.k8s.metrics import OperatorMetrics
from subnetlab.k8s.plan import backoff, is_temporary
from subnetlab.k8s.resources import COMMON_LABELS, LABEL_SUBNET, key_secret, owner_reference
from subnetlab.k8s.status import condition, phase_of
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerError, LedgerUnreachable
from subnetlab.specs import KeySource, ResourceT, SpecError, Subnet, validate_resource

log = logging.getLogger("subnetlab.k8s")
Body = Mapping[str, Any]
EventSink = Callable[[Body, str, str, str], None]
"""(object, "Normal" | "Warning", reason, message): posts a Kubernetes Event."""


class Retry(Exception):  # noqa: N818 -- an outcome, not an error
    """Try again after `delay` seconds; `reason` is the condition reason to show."""

    def __init__(self, reason: str, message: str, delay: float) -> None:
        super().__init__(message)
        self.reason, self.message, self.delay = reason, message, delay


class Fail(Exception):  # noqa: N818 -- an outcome, not an error
    """The spec cannot work as written: no retry until the object changes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def utc_now() -> str:
    """RFC 3339, second precision, as Kubernetes writes times."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Meta(NamedTuple):
    """The identity of a stored object: what every step reads from its metadata.

    Named fields, because `meta(body).uid` says what `meta(body)[2]` hides; a tuple still,
    so `name, namespace, _, _ = meta(body)` reads the same.
    """

    name: str
    namespace: str
    uid: str
    generation: int


def meta(body: Body) -> Meta:
    """The name, namespace, uid and generation of an object."""
    m = body["metadata"]
    return Meta(str(m["name"]), str(m["namespace"]), str(m["uid"]),
                int(m.get("generation") or 0))


def parse_resource(model: type[ResourceT], body: Body) -> ResourceT:
    """The stored object as its spec model (`subnetlab.specs`), or Fail naming the field
    and the reason: the same words `subnetlab up` uses for the same mistake."""
    name, namespace, _, _ = meta(body)
    document = {"apiVersion": body["apiVersion"], "kind": body["kind"],
                "metadata": {"name": name, "namespace": namespace},
                "spec": body.get("spec") or {}}
    try:
        return validate_resource(model, document, f"{body['kind']} {namespace}/{name}")
    except SpecError as exc:
        raise Fail("InvalidSpec", str(exc)) from None


@dataclass
class Operator:
    """Clients, settings and per-object locks of one running operator."""

    config: OperatorConfig
    ledger: Ledger
    kube: Kube
    metrics: OperatorMetrics
    event: EventSink
    now: Callable[[], str] = utc_now
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, uid: str) -> asyncio.Lock:
        """One lock per object: a timer never runs beside a change handler of the same
        object, so two passes cannot both generate a key or register a hotkey."""
        return self._locks.setdefault(uid, asyncio.Lock())

    @property
    def tracked(self) -> int:
        """How many Subnets and Neurons this operator has reconciled and not let go."""
        return len(self._locks)

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self.metrics.set_phase(uid, "", None)

    def backoff(self, retry: int) -> float:
        return backoff(retry, self.config.max_backoff_s)

    def outcome(self, exc: Exception, retry: int) -> Retry | Fail:
        """How a pass that hit `exc` ends: Retry with backoff, or Fail when the ledger
        refuses what the spec asks (a retry would be refused again)."""
        if isinstance(exc, Retry | Fail):
            return exc
        if isinstance(exc, LedgerUnreachable):
            return Retry("LedgerUnreachable", str(exc), self.backoff(retry))
        if isinstance(exc, KubeError) and exc.temporary:
            return Retry("ApiServerBusy", str(exc), self.backoff(retry))
        if isinstance(exc, KubeError) and exc.status in (401, 403):  # RBAC: fixable, not ours
            return Retry("Forbidden", str(exc), self.config.max_backoff_s)
        if isinstance(exc, LedgerError):
            if exc.code == "insufficient_balance":
                return Retry("InsufficientFunds", str(exc), self.backoff(retry))
            if is_temporary(exc):
                return Retry("LedgerBusy", str(exc), self.backoff(retry))
            return Fail("LedgerRefused", str(exc))
        raise exc

    async def submit(self, signer: Keypair, call: str, params: dict[str, Any]) -> dict[str, Any]:
        """Submit an extrinsic (counted by result); a short balance asks the chain's faucet
        for a drip and tries once more."""
        for attempt in (1, 2):
            try:
                receipt = await self.ledger.submit(signer, call, params)
            except LedgerUnreachable:
                self.metrics.extrinsics.labels(call, "unreachable").inc()
                raise
            except LedgerError as exc:
                self.metrics.extrinsics.labels(call, "refused").inc()
                if (exc.code == "insufficient_balance" and attempt == 1
                        and await self.ledger.faucet(signer)):
                    continue
                raise
            self.metrics.extrinsics.labels(call, "included").inc()
            return receipt
        raise AssertionError("unreachable")  # the loop returns or raises

    async def write_status(self, body: Body, patch: dict[str, Any]) -> None:
        """Merge `patch` into the object's status; the phase gauge follows."""
        name, namespace, uid, _ = meta(body)
        kind = str(body["kind"])
        deleting = bool(body["metadata"].get("deletionTimestamp"))
        if "conditions" in patch:
            patch["phase"] = phase_of(patch["conditions"], deleting)
            self.metrics.set_phase(uid, kind, patch["phase"])
            before = condition((body.get("status") or {}).get("conditions", []), "Ready") or {}
            after = condition(patch["conditions"], "Ready") or {}
            if before.get("reason") != after.get("reason"):  # transitions only: quiet logs
                bad = patch["phase"] in ("Degraded", "Failed")
                level = logging.WARNING if bad else logging.INFO
                log.log(level, "%s %s/%s is %s: %s: %s", kind, namespace, name, patch["phase"],
                        after.get("reason"), after.get("message", ""))
        await self.kube.patch_status(kind, namespace, name, patch)

    async def owner_key(self, subnet_body: Body, subnet: Subnet) -> Keypair:
        """The subnet owner's key: its dev key, or one kept in the `<subnet>-owner` Secret
        (generated on first use; a Secret made beforehand is adopted)."""
        if subnet.spec.owner.dev_key:  # public test key: nothing to keep secret
            return Keypair.dev(subnet.spec.owner.dev_key)
        name, namespace, _, _ = meta(subnet_body)
        return await self.keyed(subnet.spec.owner, "spec.owner", owner_secret_name(name),
                                namespace, subnet_body, {**COMMON_LABELS, LABEL_SUBNET: name})

    async def existing_owner_key(self, subnet_body: Body, subnet: Subnet) -> Keypair | None:
        """The owner's key if it still exists (never generates one: for finalizers)."""
        if subnet.spec.owner.dev_key:
            return Keypair.dev(subnet.spec.owner.dev_key)
        name, namespace, _, _ = meta(subnet_body)
        where = f"Secret {namespace}/{owner_secret_name(name)}"
        secret = await self.kube.get("Secret", namespace, owner_secret_name(name))
        try:
            return key_from_secret((secret or {}).get("data"), where)
        except KeyMaterialError:
            return None

    async def keyed(self, source: KeySource, field_name: str, secret_name: str, namespace: str,
                    owner: Body, labels: Mapping[str, str]) -> Keypair:
        """The key of `source`, with its Secret created or corrected as needed."""
        problem = cluster_key_problem(source, field_name)
        if problem:
            raise Fail("InvalidSpec", problem)
        where = f"Secret {namespace}/{secret_name}"
        for _ in range(2):  # a second pass only after losing a creation race
            existing = await self.kube.get("Secret", namespace, secret_name)
            try:
                resolved = resolve_key(source, (existing or {}).get("data"), where)
            except KeyMaterialError as exc:
                raise Fail("InvalidKey", str(exc)) from None
            if not resolved.write_secret:
                return resolved.keypair
            body = key_secret(secret_name, namespace, secret_data(resolved.keypair),
                              resolved.keypair.ss58_address, labels, owner_reference(owner))
            if existing is None:
                if await self.kube.create(body) is None:
                    continue  # someone created it meanwhile: read theirs
            else:
                await self.kube.apply(body)
            return resolved.keypair
        raise Retry("KeysPending", f"{where} keeps changing under the operator", 1.0)

    async def sybil_keys(self, source: KeySource, count: int, secret_name: str,
                         namespace: str) -> SybilKeys:
        """A sybil's further hotkeys (`keys.resolve_sybil_keys`), the new ones added to the
        neuron's key Secret (which `keyed` has made) by a merge patch: the entries are
        added beside the hotkey, whoever wrote the Secret."""
        where = f"Secret {namespace}/{secret_name}"
        existing = await self.kube.get("Secret", namespace, secret_name)
        try:
            resolved = resolve_sybil_keys(source, count, (existing or {}).get("data"), where)
        except KeyMaterialError as exc:
            raise Fail("InvalidKey", str(exc)) from None
        if resolved.write:
            await self.kube.merge_patch("Secret", namespace, secret_name,
                                        {"data": encoded(resolved.write)})
        return resolved

    async def gateway_keys(self, owner: Body, neuron: str, namespace: str,
                           labels: Mapping[str, str]) -> GatewayKeys:
        """A validator's copy of the gateway keys (`subnetlab.k8s.gateway`), written from
        the first source Secret that holds keys. When none does, an older copy is left as
        it is (its source stays on the pod template, so the pod is not rolled) and the
        result carries the message saying what to create."""
        sources = key_sources(namespace, self.config.gateway_keys_secret,
                              self.config.gateway_keys_namespace)
        candidates = []
        for source_namespace, name in sources:
            secret = await self.kube.get("Secret", source_namespace, name)
            candidates.append(((source_namespace, name), secret))
            if choose_keys(candidates[-1:]) is not None:
                break  # the first one that holds keys: the others are not read
        found = choose_keys(candidates)
        if found is None:
            copy = await self.kube.get("Secret", namespace, gateway_secret_name(neuron)) or {}
            kept = ((copy.get("metadata") or {}).get("annotations") or {}).get(
                SOURCE_ANNOTATION, "")
            return GatewayKeys(str(kept), missing_message(sources))
        await self.kube.apply(gateway_keys_secret(neuron, namespace, found, labels,
                                                  owner_reference(owner)))
        return GatewayKeys(found.source)

    async def drop_secret_keys(self, secret_name: str, namespace: str,
                               keys: list[str]) -> None:
        """Remove entries from a Secret (a merge patch with nulls)."""
        if keys:
            await self.kube.merge_patch("Secret", namespace, secret_name,
                                        {"data": dict.fromkeys(keys)})
