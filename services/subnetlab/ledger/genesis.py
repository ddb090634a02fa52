"""The development genesis: funded dev accounts, a sudo key and an open faucet.

Dev keys are derived from their names (`Keypair.dev`), so every tool on the machine can
sign as "alice" without any key files: convenient for local testnets, and the reason this
genesis must never hold anything of value.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from subnetlab.chain.model import FaucetConfig, Genesis
from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair

DEV_ACCOUNTS = ("alice", "bob", "charlie", "dave", "eve", "ferdie")
DEV_BALANCE = 1_000_000 * TOKEN


class GenesisError(ValueError):
    """A genesis file that cannot be used; the message names the file and the field."""


def dev_genesis(chain_id: str = "subnetlab-dev") -> Genesis:
    """Six funded dev accounts, alice as sudo, a faucet of 1,000 tokens per 10 blocks
    (10,000 per block and 100,000 per 100 blocks in all, no proof of work), and loopback
    axons allowed: a dev chain's neurons run on the machine of its ledger."""
    return Genesis(
        chain_id=chain_id,
        balances={Keypair.dev(name).ss58_address: DEV_BALANCE for name in DEV_ACCOUNTS},
        sudo=Keypair.dev("alice").ss58_address,
        faucet=FaucetConfig(),
        allow_loopback_axons=True,
    )


def load_genesis(path: Path) -> Genesis:
    """Read a genesis JSON file, naming the field at fault when it is invalid."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise GenesisError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GenesisError(f"{path}: is a directory, not a genesis file") from None
    except OSError as exc:
        raise GenesisError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise GenesisError(f"{path}: not a text file (not UTF-8), not a genesis file") from None
    except json.JSONDecodeError as exc:
        raise GenesisError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return Genesis.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise GenesisError(f"{path}: {where}: {first['msg']}") from None
