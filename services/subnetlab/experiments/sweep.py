"""The sweep grammar: swept quantities as comma-separated flags, and the grid they span.

Why our own parser and not Typer options: each experiment sweeps different quantities,
and `experiment run NAME` takes the flags of NAME. The flags are declared once, here, as
:class:`Param`; the CLI hands over the arguments Typer did not know, and every mistake
comes back as one :class:`SweepError` naming the flag and the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Value = int | float | str


class SweepError(ValueError):
    """A sweep flag or value the user can fix (its message names the flag)."""


@dataclass(frozen=True)
class Param:
    """One swept quantity: its row field, its flag, its type, bounds and default lists.

    A quantity that is a name rather than a number (a strategy, an engine) gives its
    `choices`; its `kind` is then str and the bounds are not used."""

    field: str
    flag: str
    kind: type[int] | type[float] | type[str]
    lo: float
    hi: float
    default: tuple[Value, ...]
    quick: tuple[Value, ...]
    help: str
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def bounds(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"{left}{_show(self.lo)}, {_show(self.hi)}{right}"

    def parse(self, text: str) -> tuple[Value, ...]:
        """The values of `--flag text`: a comma-separated list, each checked."""
        items = [item.strip() for item in text.split(",")]
        if not text.strip() or any(not item for item in items):
            raise SweepError(f"{self.flag}: {text!r} is not a comma-separated list of values")
        values = tuple(self._one(item) for item in items)
        if len(set(values)) != len(values):
            raise SweepError(f"{self.flag}: {text!r} lists a value twice")
        return values

    def _one(self, item: str) -> Value:
        if self.choices:
            if item not in self.choices:
                raise SweepError(f"{self.flag}: {item!r} is not {self.bounds()}")
            return item
        try:
            value: int | float = int(item) if self.kind is int else float(item)
        except ValueError:
            noun = "an integer" if self.kind is int else "a number"
            raise SweepError(f"{self.flag}: {item!r} is not {noun}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise SweepError(f"{self.flag}: {item!r} is not a finite number")
        below = value <= self.lo if self.lo_open else value < self.lo
        above = value >= self.hi if self.hi_open else value > self.hi
        if below or above:
            raise SweepError(f"{self.flag}: {item} is outside {self.bounds()}")
        return value


def _show(bound: Value) -> str:
    if isinstance(bound, str):
        return bound
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def parse_flags(params: Sequence[Param], args: Sequence[str], quick: bool,
                experiment: str) -> dict[str, tuple[Value, ...]]:
    """The grid from `args` (``--flag a,b`` or ``--flag=a,b``); unset flags take their
    default (or quick) lists. Raises SweepError for an unknown, repeated or bad flag."""
    by_flag = {p.flag: p for p in params}
    given: dict[str, tuple[Value, ...]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        flag, sep, text = arg.partition("=")
        if flag not in by_flag:
            known = ", ".join(by_flag) or "none"
            what = "unknown flag" if flag.startswith("-") else "unexpected argument"
            raise SweepError(f"{flag}: {what} for experiment {experiment} "
                             f"(its sweep flags: {known})")
        if not sep:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise SweepError(f"{flag}: needs a comma-separated list of values")
            text = args[i + 1]
            i += 1
        if flag in given:
            raise SweepError(f"{flag}: given twice; list every value once, comma-separated")
        given[flag] = by_flag[flag].parse(text)
        i += 1
    return {p.field: given.get(p.flag, p.quick if quick else p.default) for p in params}


def expand(grid: dict[str, tuple[Value, ...]], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, then each seed: the sweep's points, in a
    fixed order (the grid's declared order, the first field varying slowest)."""
    names = list(grid)
    return [{**dict(zip(names, combo, strict=True)), "seed": seed}
            for combo in itertools.product(*(grid[n] for n in names)) for seed in seeds]


def command_line(name: str, params: Sequence[Param], grid: dict[str, tuple[Value, ...]],
                 seeds: int, seed: int, out: str | None) -> str:
    """The exact command that re-makes a sweep (every list spelled out, so defaults that
    change later do not change what the command means)."""
    parts = ["subnetlab", "experiment", "run", name]
    for p in params:
        parts += [p.flag, ",".join(_show(v) for v in grid[p.field])]
    parts += ["--seeds", str(seeds)]
    if seed:
        parts += ["--seed", str(seed)]
    if out:
        parts += ["--out", out]
    return " ".join(parts)


def point_problem(params: Sequence[Param], point: Any) -> str | None:
    """What is wrong with one point given whole (`experiment point --point JSON`): it
    must be an object with each swept field, within its bounds, and an integer `seed`."""
    if not isinstance(point, dict):
        return "must be a JSON object of the experiment's fields and seed"
    fields = {p.field for p in params} | {"seed"}
    if missing := sorted(fields - set(point)):
        return f"missing {', '.join(missing)}"
    if unknown := sorted(set(point) - fields):
        return f"unknown field(s) {', '.join(unknown)} (fields: {', '.join(sorted(fields))})"
    seed = point["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        return f"seed: {seed!r} is not a non-negative integer"
    for p in params:
        value = point[p.field]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"{p.field}: {value!r} is not {p.bounds()}"
        try:
            p.parse(_show(value))
        except SweepError as exc:
            return f"{p.field}: {str(exc).removeprefix(p.flag + ': ')}"
    return None
