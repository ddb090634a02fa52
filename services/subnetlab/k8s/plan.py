"""What to change on the ledger to match a spec: pure decisions, no I/O.

The reconciler reads the ledger, asks these functions what differs, and submits only
that. Re-running a plan against a ledger that already matches yields nothing, which is
what makes the operator idempotent across retries and restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.ledger.client import LedgerError
from subnetlab.specs import LOCAL_SIM_ENGINE, NeuronSpec

DYNAMIC_HYPERPARAMETERS = frozenset({"burn"})
"""Moved by the chain itself (the burn adjusts to registrations): set when the spec
changes it, never "corrected" back on a routine sync."""

TEMPORARY_CODES = frozenset({
    "rate_limited", "too_many_registrations", "insufficient_balance", "stale_nonce",
    "future_nonce", "timeout", "already_known", "subnet_full",
})
"""Ledger refusals that can pass by themselves (the next block, the faucet's cooldown, a
pruned uid): retried with backoff. Anything else is a refusal of what the spec asks."""


def hyperparameter_changes(
    desired: Hyperparameters, current: Mapping[str, Any], include_dynamic: bool
) -> dict[str, Any]:
    """`{name: value}` of every hyperparameter whose ledger value differs from the spec's."""
    wanted = desired.model_dump(mode="json")
    return {
        name: value for name, value in wanted.items()
        if current.get(name) != value
        and (include_dynamic or name not in DYNAMIC_HYPERPARAMETERS)
    }


BURN_PATH = ("spec", "hyperparameters", "burn")


@dataclass(frozen=True)
class StakeChange:
    call: Literal["add_stake", "remove_stake"]
    amount: int


def stake_change(desired: int, current: int, exact: bool) -> StakeChange | None:
    """The one extrinsic that brings a stake position from `current` towards `desired` rao.

    A position grows by itself (dividends are paid into it), so a routine pass only tops
    it up to `desired`; only when the spec's stake was just changed (`exact`) is the
    position set to exactly `desired`, removing stake if needed.
    """
    if desired > current:
        return StakeChange("add_stake", desired - current)
    if exact and desired < current:
        return StakeChange("remove_stake", current - desired)
    return None


STAKE_PATH = ("spec", "stake")


def touches(diff: Iterable[tuple[Any, ...]], target: tuple[str, ...]) -> bool:
    """Whether a kopf update diff (op, path, old, new) may have changed `target`."""
    for entry in diff:
        path = tuple(entry[1])
        common = min(len(path), len(target))
        if path[:common] == target[:common]:
            return True
    return False


def is_temporary(error: LedgerError) -> bool:
    """Whether a ledger refusal may pass by itself (retry) or needs a spec change."""
    return error.code in TEMPORARY_CODES or (error.status or 0) >= 500


def backoff(retry: int, cap: float, base: float = 1.0) -> float:
    """Exponential backoff for attempt `retry` (0-based): base, 2 base, 4 base, ... cap."""
    return float(min(cap, base * 2 ** min(retry, 30)))


# ---- binding a Subnet resource to an existing subnet (spec.netuid) -----------------------


def netuid_claimant(netuid: int, uid: str, created: str,
                    subnets: Iterable[Mapping[str, Any]]) -> str | None:
    """`namespace/name` of another Subnet resource that holds `netuid` before this one
    (uid `uid`, created at `created`): one whose status has it (it created or bound it),
    or one that binds it in its spec and is older (ties: the smaller uid). Two resources
    binding one netuid at the same moment thus agree on which of them gets it."""
    for other in subnets:
        meta = other["metadata"]
        if meta["uid"] == uid:
            continue
        held = (other.get("status") or {}).get("netuid")
        wanted = (other.get("spec") or {}).get("netuid")
        older = (str(meta.get("creationTimestamp") or ""), str(meta["uid"])) < (created, uid)
        if held == netuid or (wanted == netuid and older):
            return f"{meta['namespace']}/{meta['name']}"
    return None


def binding_problem(netuid: int, info: Mapping[str, Any] | None, owner: str,
                    claimant: str | None, ledger: str) -> tuple[str, str] | None:
    """(reason, message) of why `spec.netuid` cannot be bound, None when it can: the ledger
    must have that subnet, owned by the Subnet's owner key, and no other resource may
    manage it. Each is permanent for this spec (the field is immutable: the fix is a new
    Subnet, or the right key in the owner Secret and an operator restart)."""
    if claimant is not None:
        return ("NetuidTaken", f"spec.netuid: netuid {netuid} is already managed by Subnet "
                f"{claimant}")
    if info is None:
        return ("UnknownNetuid", f"spec.netuid: the ledger at {ledger} has no subnet {netuid}")
    if info.get("owner") != owner:
        return ("NotOwner", f"spec.netuid: subnet {netuid} is owned by {info.get('owner')}, "
                f"not by this Subnet's owner key {owner} (spec.owner)")
    return None


def cluster_backend_problem(spec: NeuronSpec) -> str | None:
    """Why a Neuron's backend (or a copycat's copied engine) cannot run on a cluster although
    the spec is valid: the `local-sim-engine` URL names the simulated engine that only
    `subnetlab up` starts."""
    backend = spec.miner.backend if spec.miner else None
    if backend is not None and backend.type == "openai" and backend.url == LOCAL_SIM_ENGINE:
        return (f"spec.miner.backend.url: {LOCAL_SIM_ENGINE} is the engine `subnetlab up` "
                "starts; on a cluster give the engine's http:// or https:// URL")
    if spec.miner is not None and spec.miner.copy_from == LOCAL_SIM_ENGINE:
        return (f"spec.miner.copyFrom: {LOCAL_SIM_ENGINE} is the engine `subnetlab up` "
                "starts; on a cluster give the copied engine's http:// or https:// URL")
    return None
