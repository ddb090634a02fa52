"""Weight calls: set_weights, commit_weights, reveal_weights, and commit_evidence.

Rate limit: a hotkey may set (or commit) weights when ``block - last_weights_block >=
weights_rate_limit``; `last_weights_block` is -1 after registration, so the first set is
always allowed. A reveal is not rate limited (its commit was).

Commit-reveal: ``commit_hash = "0x" + blake2b-256(payload)`` where payload is the canonical
JSON (UTF-8, sorted keys, no whitespace) of::

    {"hotkey": ss58, "netuid": int, "salt": [int, ...], "uids": [int, ...],
     "version_key": int, "weights": [int, ...]}

with uids and weights in the order given. A salt given as a hex string stands for the list
of its byte values ("0a0b" == [10, 11]). `weights_commit_hash` computes it for clients.
A commit made while the subnet has run `e` epochs must be revealed while it has run exactly
``e + commit_reveal_period`` (earlier: reveal_too_early, later: reveal_too_late).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from subnetlab.chain.accounts import Effect
from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.chain.hyperparameters import U16_MAX
from subnetlab.chain.model import MAX_PENDING_COMMITS, ChainState, Commit, Subnet
from subnetlab.chain.neurons import registered_uid
from subnetlab.chain.params import Params, check_int, int_array, int_list, parse_hex
from subnetlab.chain.subnets import get_subnet
from subnetlab.chain.yuma import max_upscale_u16

Ints = NDArray[np.int64]
U64_MAX = 2**64 - 1
MAX_SALT_LENGTH = 1024


def weights_commit_hash(
    hotkey: str,
    netuid: int,
    uids: Sequence[int],
    weights: Sequence[int],
    salt: Sequence[int] | str,
    version_key: int = 0,
) -> str:
    """The commit hash that reveal_weights recomputes (see the module docstring)."""
    salt_values = list(bytes.fromhex(salt.removeprefix("0x"))) if isinstance(salt, str) else salt
    payload = {
        "hotkey": hotkey,
        "netuid": int(netuid),
        "salt": [int(s) for s in salt_values],
        "uids": [int(u) for u in uids],
        "version_key": int(version_key),
        "weights": [int(w) for w in weights],
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + hashlib.blake2b(encoded, digest_size=32).hexdigest()


def _parse_salt(value: object) -> list[int]:
    if isinstance(value, str):
        body = value[2:] if value[:2] in ("0x", "0X") else value
        if len(body) % 2 or len(body) > 2 * MAX_SALT_LENGTH:
            raise ChainError(
                ErrorCode.INVALID_PARAM,
                "must be an even number of hex digits (<= 1024 bytes)",
                "salt",
            )
        return list(bytes.fromhex(parse_hex(body, len(body) // 2, "salt")[2:]))
    if value is None:
        raise ChainError(ErrorCode.INVALID_PARAM, "is required", "salt")
    return int_list(value, "salt", ErrorCode.INVALID_PARAM, 0, U16_MAX, MAX_SALT_LENGTH)


@dataclass(frozen=True)
class _Vectors:
    """A weights call's uids and weights, checked, with what the policy checks read.

    State-independent but for the subnet size `n` (the uid bound), so it is parsed once
    per extrinsic and size (`Params.parsed`); the arrays are read-only.
    """

    uids: Ints
    weights: Ints
    duplicate: int | None
    """The first uid given twice, if any."""
    total: int
    top: int
    """The largest weight (0 when there is none)."""


def _parse_vectors(subnet: Subnet, p: Params) -> _Vectors:
    """uids and weights, typed and in range (uid < n, weight a u16), equal lengths."""
    n = subnet.neurons.n
    return p.parsed(("weight vectors", n), lambda: _vectors(p, n))


def _vectors(p: Params, n: int) -> _Vectors:
    uids = int_array(p.required("uids"), "uids", ErrorCode.INVALID_UID, 0, n - 1, n)
    weights = int_array(p.required("weights"), "weights", ErrorCode.INVALID_WEIGHTS, 0, U16_MAX, n)
    if len(uids) != len(weights):
        raise ChainError(
            ErrorCode.INVALID_WEIGHTS,
            f"has {len(weights)} entries but uids has {len(uids)}; they must match",
            "weights",
        )
    seen = np.zeros(n, dtype=np.bool_)
    seen[uids] = True
    duplicate = None if int(seen.sum()) == len(uids) else _first_duplicate(uids)
    uids.flags.writeable = False
    weights.flags.writeable = False
    top = int(weights.max()) if len(weights) else 0
    return _Vectors(uids, weights, duplicate, int(weights.sum()), top)


def _first_duplicate(values: Ints) -> int | None:
    seen: set[int] = set()
    for value in values.tolist():
        if value in seen:
            return int(value)
        seen.add(value)
    return None


def _check_policy(subnet: Subnet, uid: int, vectors: _Vectors) -> None:
    """Subtensor's checks: unique uids, enough of them, some weight, max_weight_limit."""
    uids = vectors.uids
    if vectors.duplicate is not None:
        raise ChainError(
            ErrorCode.DUPLICATE_UID, f"uid {vectors.duplicate} appears more than once", "uids"
        )
    hp = subnet.hyperparameters
    self_weight = len(uids) == 1 and int(uids[0]) == uid
    required = min(hp.min_allowed_weights, subnet.neurons.n)
    if not self_weight and len(uids) < required:
        raise ChainError(
            ErrorCode.TOO_FEW_WEIGHTS,
            f"{len(uids)} uid(s) given; subnet {subnet.netuid} needs at least {required}",
            "uids",
        )
    total = vectors.total
    if total == 0:
        raise ChainError(
            ErrorCode.INVALID_WEIGHTS, "at least one weight must be positive", "weights"
        )
    if not self_weight and hp.max_weight_limit < 1.0:
        top = vectors.top / total
        if top > hp.max_weight_limit:
            raise ChainError(
                ErrorCode.WEIGHT_LIMIT_EXCEEDED,
                f"largest normalised weight {top:.6f} exceeds max_weight_limit "
                f"{hp.max_weight_limit}",
                "weights",
            )


def _check_rate(subnet: Subnet, uid: int, block: int) -> None:
    last = int(subnet.neurons.last_weights_block[uid])
    limit = subnet.hyperparameters.weights_rate_limit
    if last >= 0 and block - last < limit:
        raise ChainError(
            ErrorCode.RATE_LIMITED,
            f"weights last set at block {last}; weights_rate_limit allows the next at block "
            f"{last + limit}",
            "origin",
        )


def _store_row(subnet: Subnet, uid: int, uids: Ints, weights: Ints) -> None:
    """The row as subtensor stores it: max-upscaled to u16 on the named uids, none elsewhere."""
    row = subnet.weights[uid]
    row[:] = 0
    row[uids] = max_upscale_u16(weights)
    named = subnet.weights_named[uid]
    named[:] = False
    named[uids] = True


def set_weights(state: ChainState, origin: str, p: Params) -> Effect:
    """A registered hotkey sets its weight row (not under commit-reveal)."""
    subnet = get_subnet(state, p)
    uid = registered_uid(subnet, origin)
    vectors = _parse_vectors(subnet, p)
    p.opt_int("version_key", 0, lo=0, hi=U64_MAX)
    p.done()
    if subnet.hyperparameters.commit_reveal_weights_enabled:
        raise ChainError(
            ErrorCode.COMMIT_REVEAL_ENABLED,
            f"subnet {subnet.netuid} uses commit-reveal: use commit_weights and reveal_weights",
            "netuid",
        )
    _check_policy(subnet, uid, vectors)
    block = state.block
    _check_rate(subnet, uid, block)

    def effect() -> dict[str, Any]:
        _store_row(subnet, uid, vectors.uids, vectors.weights)
        subnet.neurons.last_update[uid] = block
        subnet.neurons.last_weights_block[uid] = block
        return {"netuid": subnet.netuid, "uid": uid, "count": len(vectors.uids)}

    return effect


def _require_commit_reveal(subnet: Subnet) -> None:
    if not subnet.hyperparameters.commit_reveal_weights_enabled:
        raise ChainError(
            ErrorCode.COMMIT_REVEAL_DISABLED,
            f"subnet {subnet.netuid} does not use commit-reveal: use set_weights",
            "netuid",
        )


def live_commits(subnet: Subnet, pending: list[Commit]) -> list[Commit]:
    """Commits that can still be revealed (not past their reveal epoch)."""
    period = subnet.hyperparameters.commit_reveal_period
    return [c for c in pending if c.epoch + period >= subnet.epochs_run]


def commit_weights(state: ChainState, origin: str, p: Params) -> Effect:
    """Commit the hash of a future reveal (subnets with commit-reveal only)."""
    subnet = get_subnet(state, p)
    commit_hash = p.hex32("commit_hash")
    p.done()
    _require_commit_reveal(subnet)
    uid = registered_uid(subnet, origin)
    block = state.block
    _check_rate(subnet, uid, block)
    key = (origin, subnet.netuid)
    live = live_commits(subnet, state.commits.get(key, []))
    if len(live) >= MAX_PENDING_COMMITS:
        raise ChainError(
            ErrorCode.TOO_MANY_COMMITS,
            f"{len(live)} commits are pending on subnet {subnet.netuid}; reveal some first",
            "origin",
        )
    if any(c.hash == commit_hash for c in live):
        raise ChainError(ErrorCode.INVALID_PARAM, "this hash is already committed", "commit_hash")
    commit = Commit(hash=commit_hash, block=block, epoch=subnet.epochs_run)

    def effect() -> dict[str, Any]:
        state.commits[key] = [*live, commit]
        subnet.neurons.last_update[uid] = block
        subnet.neurons.last_weights_block[uid] = block
        reveal_epoch = commit.epoch + subnet.hyperparameters.commit_reveal_period
        return {
            "netuid": subnet.netuid,
            "uid": uid,
            "epoch": commit.epoch,
            "reveal_epoch": reveal_epoch,
        }

    return effect


def _check_reveal_epoch(subnet: Subnet, commit: Commit) -> None:
    target = commit.epoch + subnet.hyperparameters.commit_reveal_period
    now = subnet.epochs_run
    if now < target:
        raise ChainError(
            ErrorCode.REVEAL_TOO_EARLY,
            f"committed in epoch {commit.epoch}; reveal in epoch {target} (now {now})",
        )
    if now > target:
        raise ChainError(
            ErrorCode.REVEAL_TOO_LATE,
            f"committed in epoch {commit.epoch}; the reveal window was epoch {target} (now {now})",
        )


def reveal_weights(state: ChainState, origin: str, p: Params) -> Effect:
    """Reveal committed weights: the hash must match a commit made one period ago."""
    subnet = get_subnet(state, p)
    vectors = _parse_vectors(subnet, p)
    uids, weights = vectors.uids, vectors.weights
    salt = _parse_salt(p.raw("salt"))
    version_key = p.opt_int("version_key", 0, lo=0, hi=U64_MAX)
    p.done()
    _require_commit_reveal(subnet)
    uid = registered_uid(subnet, origin)
    key = (origin, subnet.netuid)
    pending = state.commits.get(key, [])
    if not pending:
        raise ChainError(
            ErrorCode.NO_COMMIT, f"no pending commit on subnet {subnet.netuid}", "origin"
        )
    digest = weights_commit_hash(
        origin, subnet.netuid, uids.tolist(), weights.tolist(), salt, version_key
    )
    commit = next((c for c in pending if c.hash == digest), None)
    if commit is None:
        raise ChainError(
            ErrorCode.COMMIT_MISMATCH,
            f"hash {digest} of the revealed values matches none of {len(pending)} commit(s)",
            "weights",
        )
    _check_reveal_epoch(subnet, commit)
    _check_policy(subnet, uid, vectors)
    block = state.block

    def effect() -> dict[str, Any]:
        left = [c for c in live_commits(subnet, pending) if c is not commit]
        if left:
            state.commits[key] = left
        else:
            del state.commits[key]
        _store_row(subnet, uid, uids, weights)
        subnet.neurons.last_update[uid] = block
        return {"netuid": subnet.netuid, "uid": uid, "count": len(uids)}

    return effect


def commit_evidence(state: ChainState, origin: str, p: Params) -> Effect:
    """Record a validator's 32-byte digest of the work behind its weights for one epoch."""
    subnet = get_subnet(state, p)
    epoch = check_int(p.required("epoch"), "epoch", lo=0)
    digest = p.hex32("digest")
    p.done()
    if epoch > subnet.epochs_run:
        raise ChainError(
            ErrorCode.INVALID_PARAM,
            f"epoch {epoch} has not started; subnet {subnet.netuid} is in epoch "
            f"{subnet.epochs_run}",
            "epoch",
        )
    uid = registered_uid(subnet, origin)
    key = (subnet.netuid, origin, epoch)
    if key in state.evidence:
        raise ChainError(
            ErrorCode.DUPLICATE_EVIDENCE,
            f"evidence for epoch {epoch} on subnet {subnet.netuid} is already committed",
            "epoch",
        )

    def effect() -> dict[str, Any]:
        state.evidence[key] = digest
        return {"netuid": subnet.netuid, "uid": uid, "epoch": epoch}

    return effect
