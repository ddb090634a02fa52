"""How concentrated stake and emission are: Gini coefficient and Nakamoto coefficient.

Both are pure functions of a vector of non-negative amounts, so the ledger's metrics and the
reports of `subnetlab up` compute them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def gini(amounts: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient in [0, 1): 0 when everyone holds the same, near 1 when one holds all.

    Uses the sorted-rank formula G = (2 Σ i·x_(i)) / (n Σ x) - (n + 1) / n over the n
    holders (zeros included); 0 for an empty or all-zero vector.
    """
    x = np.sort(np.asarray(amounts, dtype=np.float64))
    n = x.size
    total = float(x.sum())
    if n == 0 or total <= 0.0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def nakamoto(amounts: Sequence[float] | np.ndarray, threshold: float = 0.5) -> int:
    """Nakamoto coefficient: the fewest holders that together hold more than `threshold`.

    0 for an empty or all-zero vector (nobody holds anything to capture).
    """
    x = np.sort(np.asarray(amounts, dtype=np.float64))[::-1]
    total = float(x.sum())
    if x.size == 0 or total <= 0.0:
        return 0
    cumulative = np.cumsum(x) / total
    return int(np.argmax(cumulative > threshold) + 1)
