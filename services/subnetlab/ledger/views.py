"""Read-only views of the chain state that only the ledger's API needs (pure, no I/O).

`weight_rows` is how validators and auditors read back the weights set on chain: the row
the state machine stored (max-upscaled to u16, as subtensor stores it), which under
commit-reveal is the row that was revealed (a commit alone changes no row).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subnetlab.chain.model import Subnet


class NeuronQueryError(ValueError):
    """The uid or hotkey asked for names no neuron of the subnet (`unknown_uid`,
    `unknown_hotkey`), or the two name different ones (`invalid_param`); `field` says which."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


def _row(subnet: Subnet, uid: int) -> dict[str, Any]:
    row = subnet.weights[uid]
    targets = np.flatnonzero(row)
    return {
        "uid": uid,
        "hotkey": subnet.neurons.hotkeys[uid],
        "last_update": int(subnet.neurons.last_update[uid]),
        "weights": {str(int(t)): int(row[t]) for t in targets},
    }


def weight_rows(
    subnet: Subnet, uid: int | None = None, hotkey: str | None = None
) -> list[dict[str, Any]]:
    """Every non-empty weight row of the subnet, or the one row of `uid` / `hotkey`.

    One neuron asked for by uid or hotkey gets its row even when it set no weights (an
    empty `weights`), so "no weights yet" and "not a neuron" are told apart (the latter
    is a `NeuronQueryError`). `uid` and `hotkey` together must name the same uid.
    """
    neurons = subnet.neurons
    chosen: int | None = None
    if uid is not None:
        if uid >= neurons.n or neurons.hotkeys[uid] is None:
            raise NeuronQueryError(
                "unknown_uid", "uid", f"uid {uid} is not a neuron of subnet {subnet.netuid}"
            )
        chosen = uid
    if hotkey is not None:
        held = neurons.uid_of.get(hotkey)
        if held is None:
            raise NeuronQueryError(
                "unknown_hotkey", "hotkey", f"{hotkey} is not registered on subnet {subnet.netuid}"
            )
        if chosen is not None and held != chosen:
            raise NeuronQueryError(
                "invalid_param", "hotkey", f"{hotkey} holds uid {held}, not uid {chosen}"
            )
        chosen = held
    if chosen is not None:
        return [_row(subnet, chosen)]
    filled = np.flatnonzero(subnet.weights.any(axis=1)).tolist()
    return [_row(subnet, u) for u in filled if neurons.hotkeys[u] is not None]
