"""Across-seed summaries: the mean and a 95% confidence interval (Student's t).

Why our own table: scipy is not a dependency, and the sweeps use few seeds, where the
t quantile (not 1.96) is what makes the interval honest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# two-sided 95% quantiles of Student's t by degrees of freedom 1..30
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (1.96 beyond 30)."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% interval); the half-width is 0 for a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci: no values")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t95(n - 1) * math.sqrt(var / n)


def group(rows: Iterable[dict[str, Any]], keys: Sequence[str]
          ) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Rows by the values of `keys` (seeds fall together), in first-seen order."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(tuple(row[k] for k in keys), []).append(row)
    return out


def summarise(rows: Iterable[dict[str, Any]], keys: Sequence[str], metric: str,
              pick: Callable[[dict[str, Any]], bool] = lambda r: True
              ) -> list[tuple[tuple[Any, ...], float, float, int]]:
    """Per group of `keys`: (key values, mean of `metric`, CI half-width, seeds)."""
    return [(key, *mean_ci([r[metric] for r in members]), len(members))
            for key, members in group((r for r in rows if pick(r)), keys).items()]
