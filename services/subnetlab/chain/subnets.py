"""Subnet calls: create_subnet, set_hyperparameters (owner or sudo), sudo_set_hyperparameters."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from subnetlab.chain.accounts import Effect, require_balance, require_sudo
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.model import ChainState, Subnet
from subnetlab.chain.params import Params, is_int, is_real

_INVALID = ErrorCode.INVALID_PARAM


def get_subnet(state: ChainState, p: Params) -> Subnet:
    """The subnet named by the `netuid` param, or unknown_subnet."""
    netuid = p.int_("netuid", lo=0, hi=65535)
    subnet = state.subnets.get(netuid)
    if subnet is None:
        reason = "is the reserved root network" if netuid == 0 else "does not exist"
        raise ChainError(ErrorCode.UNKNOWN_SUBNET, f"subnet {netuid} {reason}", "netuid")
    return subnet


def _check_field_type(name: str, value: object) -> None:
    """Strict types before pydantic's lax coercion (which would take True as 1, "5" as 5)."""
    info = Hyperparameters.model_fields.get(name)
    if info is None:
        raise ChainError(_INVALID, "is not a hyperparameter", name)
    kind = info.annotation
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = is_int(value)
    else:
        ok = is_real(value)
    if not ok:
        expected = "true or false" if kind is bool else "an integer" if kind is int else "a number"
        raise ChainError(_INVALID, f"must be {expected}, got {value!r}", name)


def _plain(value: object) -> object:
    """numpy scalars as Python ones, so the stored model (and the state root) is canonical."""
    if isinstance(value, bool):
        return value
    if is_int(value):
        return int(value)
    if is_real(value):
        return float(value)
    return value


def validate_hyperparameters(
    base: Hyperparameters, changes: dict[str, object], prefix: str = ""
) -> Hyperparameters:
    """`base.with_changes(**changes)` with each refusal as invalid_param naming the field."""
    for name, value in changes.items():
        _check_field_type(name, value)
    clean = {k: _plain(v) for k, v in changes.items()}
    try:
        return base.with_changes(**clean)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"]) or "hyperparameters"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ChainError(_INVALID, message, prefix + loc) from None


def create_subnet(state: ChainState, origin: str, p: Params) -> Effect:
    """Lock subnet_lock_cost from the origin, which becomes the owner of a new netuid."""
    raw = p.raw("hyperparameters")
    p.done()
    if raw is not None and not isinstance(raw, dict):
        raise ChainError(_INVALID, "must be an object of hyperparameters", "hyperparameters")
    hp = validate_hyperparameters(
        state.default_hyperparameters, dict(raw or {}), prefix="hyperparameters."
    )
    cost = state.subnet_lock_cost
    require_balance(state, origin, cost, "subnet_lock_cost")
    netuid = state.next_netuid()
    block = state.block

    def effect() -> dict[str, Any]:
        state.debit(origin, cost)
        state.subnets[netuid] = Subnet(
            netuid=netuid,
            owner=origin,
            hyperparameters=hp,
            lock=cost,
            created_at=block,
            last_epoch_block=block,
            last_adjustment_block=block,
        )
        return {"netuid": netuid, "lock": cost}

    return effect


def _plan_hyperparameters(state: ChainState, subnet: Subnet, p: Params) -> Effect:
    changes = p.rest()
    if not changes:
        raise ChainError(_INVALID, "give at least one hyperparameter to change", "params")
    hp = validate_hyperparameters(subnet.hyperparameters, changes)
    n = subnet.neurons.n
    if hp.max_allowed_uids < n:
        raise ChainError(
            _INVALID,
            f"{hp.max_allowed_uids} is below the {n} uids already registered",
            "max_allowed_uids",
        )
    drop_commits = (
        subnet.hyperparameters.commit_reveal_weights_enabled
        and not hp.commit_reveal_weights_enabled
    )

    def effect() -> dict[str, Any]:
        subnet.hyperparameters = hp
        if drop_commits:  # pending commits could never be revealed any more
            for key in [k for k in state.commits if k[1] == subnet.netuid]:
                del state.commits[key]
        return {"netuid": subnet.netuid, "changed": sorted(changes)}

    return effect


def set_hyperparameters(state: ChainState, origin: str, p: Params) -> Effect:
    """Change hyperparameters of a subnet: its owner (or sudo) only."""
    subnet = get_subnet(state, p)
    if origin != subnet.owner and origin != state.sudo:
        raise ChainError(
            ErrorCode.NOT_OWNER, f"only the owner of subnet {subnet.netuid} may do this", "origin"
        )
    return _plan_hyperparameters(state, subnet, p)


def sudo_set_hyperparameters(state: ChainState, origin: str, p: Params) -> Effect:
    """Change hyperparameters of any subnet: sudo only."""
    subnet = get_subnet(state, p)
    require_sudo(state, origin)
    return _plan_hyperparameters(state, subnet, p)
