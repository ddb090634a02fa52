"""Canonical serialisation of the chain state: snapshots and the state root.

A snapshot is canonical JSON (UTF-8, keys sorted, no whitespace, no NaN): equal states
serialise to equal bytes whatever the insertion order of their dicts, so the state root is
simply ``"0x" + blake2b-256(snapshot)``. Anyone replaying the block log recomputes it.

Encoding rules (format version 3; version 2 had no faucet budget, block hashes or
`allow_loopback_axons`, version 1 no `weights_named`):
- integers and strings as JSON; dict keys that are ints (netuids, epochs) as decimal strings;
- hyperparameters as their pydantic JSON dump (floats use Python's shortest round-trip repr);
- numpy columns and matrices as ``{"dtype": "<f8", "shape": [...], "b64": ...}``, the
  little-endian bytes in base64 (floats exact; -0.0 is normalised to 0.0 first);
- accounts equal to the default (balance 0, nonce 0, never dripped) are omitted, so an
  account that exists and one that does not are the same state;
- a vacant uid is null in `hotkeys` and `coldkeys` (its axon is null, its columns zero);
- the faucet's budget counters as ``[block, block_minted, window, window_minted]``; the
  recent block hashes (kept while the faucet asks for work) by decimal block number;
- the hotkey -> uid index is derived data and is rebuilt on load.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.model import (
    ARRAY_COLUMNS,
    Account,
    Axon,
    ChainState,
    Commit,
    FaucetConfig,
    FaucetUsage,
    HotkeyInfo,
    Neurons,
    Subnet,
)

FORMAT_VERSION = 3

Json = dict[str, Any]


def _encode_array(array: NDArray[Any]) -> Json:
    if array.dtype.kind == "f":
        array = array + 0.0  # -0.0 == 0.0 must hash the same
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": little.dtype.str,
        "shape": list(array.shape),
        "b64": base64.b64encode(np.ascontiguousarray(little).tobytes()).decode("ascii"),
    }


def _decode_array(data: Json) -> NDArray[Any]:
    raw = base64.b64decode(data["b64"])
    array = np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"])
    return array.astype(array.dtype.newbyteorder("="))


def _encode_neurons(neurons: Neurons) -> Json:
    out: Json = {
        "hotkeys": list(neurons.hotkeys),
        "coldkeys": list(neurons.coldkeys),
        "axons": [
            None if a is None else [a.ip, a.port, a.protocol, a.block] for a in neurons.axons
        ],
    }
    for name in ARRAY_COLUMNS:
        out[name] = _encode_array(neurons.column(name))
    return out


def _decode_neurons(data: Json) -> Neurons:
    neurons = Neurons(
        hotkeys=list(data["hotkeys"]),
        coldkeys=list(data["coldkeys"]),
        axons=[None if a is None else Axon(a[0], a[1], a[2], a[3]) for a in data["axons"]],
    )
    for name, dtype in ARRAY_COLUMNS.items():
        setattr(neurons, name, _decode_array(data[name]).astype(dtype))
    neurons.uid_of = {
        hotkey: uid for uid, hotkey in enumerate(neurons.hotkeys) if hotkey is not None
    }
    return neurons


def _encode_subnet(subnet: Subnet) -> Json:
    return {
        "netuid": subnet.netuid,
        "owner": subnet.owner,
        "hyperparameters": subnet.hyperparameters.model_dump(mode="json"),
        "lock": subnet.lock,
        "created_at": subnet.created_at,
        "last_epoch_block": subnet.last_epoch_block,
        "last_adjustment_block": subnet.last_adjustment_block,
        "pending_emission": subnet.pending_emission,
        "registrations_this_interval": subnet.registrations_this_interval,
        "registrations_this_block": subnet.registrations_this_block,
        "epochs_run": subnet.epochs_run,
        "neurons": _encode_neurons(subnet.neurons),
        "weights": _encode_array(subnet.weights),
        "weights_named": _encode_array(subnet.weights_named.astype(np.uint8)),
        "bonds": _encode_array(subnet.bonds),
    }


def _decode_subnet(data: Json) -> Subnet:
    return Subnet(
        netuid=data["netuid"],
        owner=data["owner"],
        hyperparameters=Hyperparameters.model_validate(data["hyperparameters"]),
        lock=data["lock"],
        created_at=data["created_at"],
        last_epoch_block=data["last_epoch_block"],
        last_adjustment_block=data["last_adjustment_block"],
        pending_emission=data["pending_emission"],
        registrations_this_interval=data["registrations_this_interval"],
        registrations_this_block=data["registrations_this_block"],
        epochs_run=data["epochs_run"],
        neurons=_decode_neurons(data["neurons"]),
        weights=_decode_array(data["weights"]).astype(np.uint16),
        bonds=_decode_array(data["bonds"]).astype(np.uint16),
        weights_named=_decode_array(data["weights_named"]).astype(np.bool_),
    )


def to_json(state: ChainState) -> Json:
    """The state as a JSON-ready dict (keys are sorted when dumped)."""
    commits: dict[str, dict[str, list[list[Any]]]] = {}
    for (hotkey, netuid), pending in state.commits.items():
        if pending:
            commits.setdefault(hotkey, {})[str(netuid)] = [
                [c.hash, c.block, c.epoch] for c in pending
            ]
    evidence: dict[str, dict[str, dict[str, str]]] = {}
    for (netuid, hotkey, epoch), digest in state.evidence.items():
        evidence.setdefault(str(netuid), {}).setdefault(hotkey, {})[str(epoch)] = digest
    return {
        "format": FORMAT_VERSION,
        "chain_id": state.chain_id,
        "block": state.block,
        "sudo": state.sudo,
        "faucet": None if state.faucet is None else state.faucet.model_dump(mode="json"),
        "faucet_enabled": state.faucet_enabled,
        "faucet_usage": [
            state.faucet_usage.block, state.faucet_usage.block_minted,
            state.faucet_usage.window, state.faucet_usage.window_minted,
        ],
        "block_hashes": {str(n): digest for n, digest in state.block_hashes.items()},
        "allow_loopback_axons": state.allow_loopback_axons,
        "subnet_lock_cost": state.subnet_lock_cost,
        "block_emission": state.block_emission,
        "default_hyperparameters": state.default_hyperparameters.model_dump(mode="json"),
        "total_issuance": state.total_issuance,
        "total_burned": state.total_burned,
        "total_emitted": state.total_emitted,
        "total_faucet": state.total_faucet,
        "total_fees": state.total_fees,
        "fees": {call: fee for call, fee in state.fees.items() if fee},
        "accounts": {
            address: [a.balance, a.nonce, a.last_faucet]
            for address, a in state.accounts.items()
            if not a.is_default()
        },
        "hotkeys": {hk: [info.owner, info.take] for hk, info in state.hotkeys.items()},
        "stake": {
            hk: {ck: amount for ck, amount in positions.items() if amount}
            for hk, positions in state.stake.items()
            if any(positions.values())
        },
        "subnets": {str(netuid): _encode_subnet(s) for netuid, s in state.subnets.items()},
        "commits": commits,
        "evidence": evidence,
    }


def from_json(data: Json) -> ChainState:
    """Inverse of `to_json`."""
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported snapshot format {data.get('format')!r}")
    state = ChainState(
        chain_id=data["chain_id"],
        block=data["block"],
        sudo=data["sudo"],
        faucet=None if data["faucet"] is None else FaucetConfig.model_validate(data["faucet"]),
        faucet_enabled=data["faucet_enabled"],
        subnet_lock_cost=data["subnet_lock_cost"],
        block_emission=data["block_emission"],
        default_hyperparameters=Hyperparameters.model_validate(data["default_hyperparameters"]),
        total_issuance=data["total_issuance"],
        total_burned=data["total_burned"],
        total_emitted=data["total_emitted"],
        total_faucet=data["total_faucet"],
        total_fees=data["total_fees"],
        fees=dict(data["fees"]),
        allow_loopback_axons=data["allow_loopback_axons"],
        faucet_usage=FaucetUsage(*data["faucet_usage"]),
        block_hashes={int(n): digest for n, digest in data["block_hashes"].items()},
    )
    state.accounts = {k: Account(v[0], v[1], v[2]) for k, v in data["accounts"].items()}
    state.hotkeys = {k: HotkeyInfo(v[0], v[1]) for k, v in data["hotkeys"].items()}
    state.stake = {hk: dict(positions) for hk, positions in data["stake"].items()}
    for key in sorted(data["subnets"], key=int):
        state.subnets[int(key)] = _decode_subnet(data["subnets"][key])
    for hotkey, per_subnet in data["commits"].items():
        for netuid, pending in per_subnet.items():
            state.commits[(hotkey, int(netuid))] = [Commit(c[0], c[1], c[2]) for c in pending]
    for netuid, per_hotkey in data["evidence"].items():
        for hotkey, per_epoch in per_hotkey.items():
            for epoch, digest in per_epoch.items():
                state.evidence[(int(netuid), hotkey, int(epoch))] = digest
    return state


def to_snapshot(state: ChainState) -> bytes:
    """Canonical JSON bytes of the whole state (what the ledger stores in Redis)."""
    return json.dumps(
        to_json(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def from_snapshot(snapshot: bytes | str) -> ChainState:
    """Rebuild a state from `to_snapshot` output; the state root round-trips exactly."""
    data = json.loads(snapshot)
    if not isinstance(data, dict):
        raise ValueError("a snapshot is a JSON object")
    return from_json(data)


def state_root(state: ChainState) -> str:
    """'0x' + blake2b-256 of the canonical snapshot: equal states, equal roots."""
    return "0x" + hashlib.blake2b(to_snapshot(state), digest_size=32).hexdigest()
