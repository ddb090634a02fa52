"""The token and its smallest unit, rao: one definition for the chain and everyone who
shows or reads amounts.

Balances, stakes and emissions are integer rao on the chain (as on the real one, u64);
people and specs speak tokens. Conversions live here so that a spec's ``stake: 1.5`` and a
status column's ``1.5`` are the same number everywhere.
"""

from __future__ import annotations

TOKEN = 10**9
"""rao per token."""


def rao(tokens: float) -> int:
    """Tokens (a spec's float, at most rao precision) as integer rao."""
    return round(tokens * TOKEN)


def tokens(rao: int | float) -> float:
    """Rao as tokens, for display (the chain's rao stay exact on the chain)."""
    return round(float(rao) / TOKEN, 9)
