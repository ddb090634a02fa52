"""What the operator writes under `status`: the models (schema source) and pure builders.

Why models: the CRDs' status schemas are generated from these classes exactly as the spec
schemas are generated from `subnetlab.specs`, so what the operator writes and what the API
server accepts cannot drift apart. Every function here is pure (the clock is a parameter):
conditions follow the Kubernetes convention (`type`, `status` True/False/Unknown, a
CamelCase `reason`, a human `message`, `lastTransitionTime` that moves only when `status`
does, `observedGeneration`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from subnetlab.chain import units
from subnetlab.protocol.metagraph import occupied

ConditionStatus = Literal["True", "False", "Unknown"]
NEURON_CONDITIONS = ("KeysReady", "Registered", "Staked", "Available", "Ready")
SUBNET_CONDITIONS = ("Created", "HyperparametersSynced", "Ready")
Phase = Literal["Pending", "Starting", "Ready", "Degraded", "Failed", "Terminating"]
FAILED_REASONS = frozenset({"InvalidSpec", "InvalidKey", "LedgerRefused", "NotOwner",
                            "UnknownNetuid", "NetuidTaken"})
DEGRADED_REASONS = frozenset({"LedgerUnreachable", "LedgerBusy", "InsufficientFunds",
                              "ApiServerBusy"})
REASON_PATTERN = r"^[A-Z][A-Za-z0-9]*$"


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(_Status):
    """One observation: is `type` true, why (`reason`), in words (`message`)."""

    type: str = Field(min_length=1, max_length=64)
    status: ConditionStatus
    reason: str = Field(pattern=REASON_PATTERN, max_length=64)
    message: str = Field("", max_length=2048)
    last_transition_time: str | None = Field(None, description="RFC 3339 time.")
    observed_generation: int | None = Field(None, ge=0)


class NeuronStatus(_Status):
    """A Neuron as the ledger and the cluster see it."""

    phase: Phase | None = None
    observed_generation: int | None = Field(None, ge=0)
    netuid: int | None = Field(None, ge=0, le=65535)
    uid: int | None = Field(None, ge=0, description="The neuron's uid in the metagraph.")
    hotkey: str | None = Field(None, description="SS58 address of the neuron's hotkey.")
    coldkey: str | None = Field(None, description="SS58 address that registered and staked.")
    stake: float | None = Field(None, ge=0, description="Total stake on the hotkey, tokens.")
    incentive: float | None = Field(None, ge=0, le=1)
    dividends: float | None = Field(None, ge=0, le=1)
    emission: float | None = Field(None, ge=0, description="Last epoch's emission, tokens.")
    validator_permit: bool | None = None
    sybil_hotkeys: list[str] | None = Field(
        None, description="sybil: SS58 addresses of the further hotkeys its engine serves.")
    sybil_uids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="sybil: the uids of those hotkeys, in the same order (`uid` is the "
        "neuron's own).")
    endpoint: str | None = Field(None, description="In-cluster URL of the neuron's Service.")
    last_sync: str | None = Field(None, description="When the metagraph was last read.")
    conditions: list[Condition] = Field(default_factory=list)


class SubnetStatus(_Status):
    """A Subnet as the ledger sees it."""

    phase: Phase | None = None
    observed_generation: int | None = Field(None, ge=0)
    netuid: int | None = Field(None, ge=0, le=65535)
    owner: str | None = Field(None, description="SS58 address of the subnet's owner.")
    block: int | None = Field(None, ge=0, description="Ledger height at the last sync.")
    last_epoch_block: int | None = Field(None, ge=0)
    epochs: int | None = Field(None, ge=0, description="Epochs run so far.")
    neurons: int | None = Field(None, ge=0, description="Uids registered on the ledger.")
    total_stake: float | None = Field(None, ge=0, description="Stake on the subnet, tokens.")
    creation_started_at_block: int | None = Field(
        None, ge=0, description="Ledger height just before create_subnet was sent: after an "
        "operator restart, a subnet of this owner created since then is adopted, not "
        "created twice.")
    last_sync: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


# ---- conditions --------------------------------------------------------------------------


def set_condition(
    conditions: Iterable[Mapping[str, Any]],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
    order: tuple[str, ...] = NEURON_CONDITIONS,
) -> list[dict[str, Any]]:
    """`conditions` with `type_` set; its transition time moves only if `status` changed.

    The result is sorted by `order` (unknown types last), so a status never reorders
    itself between two syncs and `kubectl get -o yaml` stays readable.
    """
    by_type = {str(c["type"]): dict(c) for c in conditions}
    old = by_type.get(type_) or {}
    changed = old.get("status") != status
    by_type[type_] = Condition(
        type=type_, status=status, reason=reason, message=message[:2048],
        last_transition_time=now if changed else str(old.get("lastTransitionTime") or now),
        observed_generation=generation,
    ).model_dump(by_alias=True, exclude_none=True)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(by_type.values(), key=lambda c: (rank.get(c["type"], len(rank)), c["type"]))


class Conditions:
    """An object's conditions while one reconcile pass rewrites them."""

    def __init__(self, current: Iterable[Mapping[str, Any]], generation: int,
                 clock: Callable[[], str], order: tuple[str, ...]) -> None:
        self.items: list[dict[str, Any]] = [dict(c) for c in current]
        self.generation, self.clock, self.order = generation, clock, order

    def set(self, type_: str, status: ConditionStatus, reason: str, message: str) -> None:
        self.items = set_condition(self.items, type_, status, reason, message,
                                   self.generation, self.clock(), self.order)

    def is_true(self, type_: str) -> bool:
        return is_true(self.items, type_)


def condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> dict[str, Any] | None:
    """The condition of `type_`, if present."""
    return next((dict(c) for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Iterable[Mapping[str, Any]], type_: str) -> bool:
    found = condition(conditions, type_)
    return found is not None and found.get("status") == "True"


def phase_of(conditions: Iterable[Mapping[str, Any]], deleting: bool = False) -> Phase:
    """One word for `kubectl get`: Terminating; Ready; Failed (the spec or key is wrong, or
    the ledger refuses it: nothing changes until the object does); Degraded (the ledger or
    API server is failing, retried with backoff); Starting (on the ledger, pods not
    available yet); Pending (not on the ledger yet)."""
    items = list(conditions)
    if deleting:
        return "Terminating"
    ready = condition(items, "Ready") or {}
    if ready.get("status") == "True":
        return "Ready"
    if ready.get("reason") in FAILED_REASONS:
        return "Failed"
    if ready.get("reason") in DEGRADED_REASONS:
        return "Degraded"
    if is_true(items, "Registered") and is_true(items, "Staked"):
        return "Starting"
    return "Pending"


# ---- values from the ledger and the cluster ------------------------------------------------


def tokens(rao: int | float | None) -> float | None:
    """Rao as tokens for status; None (not yet known) stays None."""
    return None if rao is None else units.tokens(rao)


def metagraph_fields(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """Status fields of one metagraph row; every field null when the hotkey has no uid
    (a JSON merge patch with nulls clears what an earlier sync wrote)."""
    if row is None:
        return {"uid": None, "stake": None, "incentive": None, "dividends": None,
                "emission": None, "validatorPermit": None}
    return {
        "uid": int(row["uid"]),
        "stake": tokens(row.get("stake", 0)),
        "incentive": float(row.get("incentive", 0.0)),
        "dividends": float(row.get("dividends", 0.0)),
        "emission": tokens(row.get("emission", 0)),
        "validatorPermit": bool(row.get("validator_permit", False)),
    }


def sybil_fields(hotkeys: list[str], uids: list[int]) -> dict[str, Any]:
    """Status fields of a sybil's further hotkeys; null for every other neuron (a merge
    patch with nulls clears what an earlier sync wrote)."""
    if not hotkeys:
        return {"sybilHotkeys": None, "sybilUids": None}
    return {"sybilHotkeys": list(hotkeys), "sybilUids": list(uids)}


def subnet_fields(info: Mapping[str, Any], metagraph: Mapping[str, Any],
                  block: int) -> dict[str, Any]:
    """Status fields of a subnet from `GET /v1/subnets/{netuid}` and its metagraph."""
    neurons = occupied(metagraph.get("neurons", []))  # vacant uids hold no neuron
    return {
        "netuid": int(info["netuid"]),
        "owner": str(info["owner"]),
        "block": block,
        "lastEpochBlock": int(info.get("last_epoch_block", 0)),
        "epochs": int(info.get("epochs_run", 0)),
        "neurons": len(neurons),
        "totalStake": tokens(sum(int(n.get("stake", 0)) for n in neurons)),
    }


def deployment_availability(status: Mapping[str, Any] | None,
                            wanted: int = 1) -> tuple[ConditionStatus, str, str]:
    """(status, reason, message) of `Available` from a Deployment's status."""
    if status is None:
        return "False", "DeploymentMissing", "the Deployment does not exist yet"
    available = int(status.get("availableReplicas") or 0)
    if available >= wanted:
        return "True", "DeploymentAvailable", f"{available}/{wanted} replicas available"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False":
            return "False", "DeploymentStalled", str(cond.get("message", ""))
    return "False", "DeploymentUnavailable", f"{available}/{wanted} replicas available"
