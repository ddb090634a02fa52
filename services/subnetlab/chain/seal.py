"""Block seals: the chain's authority signs every block, so a block names who made it.

A block's hash covers its number, parent, state root and extrinsics, but anyone can compute
a hash: a store rewritten with consistent hashes would pass the audit. The seal is the
authority's sr25519 signature (the key whose address the genesis names as `authority`)
over the sealed header: the chain it belongs to (genesis hash), the block's number, hash
and timestamp. `ledger verify` and the ledger's own replay check it with the public key
from the genesis alone, so rewriting a block needs the authority's secret key.

The message starts with ``["subnetlab-seal",`` so it can never be confused with an
extrinsic's payload (``{"call":``) or an HTTP request's signed string.
"""

from __future__ import annotations

import json

from subnetlab.keys.keypair import Keypair
from subnetlab.keys.keypair import verify as verify_signature

__all__ = ["seal_block", "seal_message", "seal_problem"]


def seal_message(genesis_hash: str, number: int, block_hash: str, timestamp: float) -> bytes:
    """The bytes the authority signs for a block (compact JSON, floats as `repr`)."""
    return json.dumps(["subnetlab-seal", genesis_hash, number, block_hash, timestamp],
                      separators=(",", ":")).encode()


def seal_block(authority: Keypair, genesis_hash: str, number: int, block_hash: str,
               timestamp: float) -> str:
    """The seal of a block: 128 lowercase hex characters (one sr25519 signature)."""
    return authority.sign(seal_message(genesis_hash, number, block_hash, timestamp)).hex()


def seal_problem(authority: str, genesis_hash: str, number: int, block_hash: str,
                 timestamp: float, seal: object) -> str | None:
    """Why `seal` is not the authority's seal of this block; None when it is."""
    if not isinstance(seal, str):
        return "bad seal: the block has no seal"
    message = seal_message(genesis_hash, number, block_hash, timestamp)
    if not verify_signature(seal, message, authority):
        return f"bad seal: not a signature of this block by the authority {authority}"
    return None
