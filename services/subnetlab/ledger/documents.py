"""Reading the ledger API's JSON documents: an account's stake positions, a hotkey's
metagraph row.

Pure helpers over what `GET /v1/accounts/{address}` and `GET /v1/subnets/{n}/metagraph`
return, so that the CLI, the operator and the local testnet read those documents one way
(each used to carry its own copy) and none of them imports another for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def stake_position(account: Mapping[str, Any], hotkey: str) -> int:
    """Rao the account has staked on `hotkey` (0 when it holds no position there)."""
    for position in account.get("stake", []):
        if position.get("hotkey") == hotkey:
            return int(position.get("amount", 0))
    return 0


def neuron_row(metagraph: Mapping[str, Any], hotkey: str) -> dict[str, Any] | None:
    """The metagraph row of `hotkey`, None when it holds no uid."""
    return next((dict(n) for n in metagraph.get("neurons", []) if n.get("hotkey") == hotkey),
                None)


def uid_of(metagraph: Mapping[str, Any], hotkey: str) -> int | None:
    """The uid `hotkey` holds in the metagraph, None when it holds none."""
    row = neuron_row(metagraph, hotkey)
    return None if row is None else int(row["uid"])
