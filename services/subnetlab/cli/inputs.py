"""Pure parsers for the chain commands' inputs: uids, weights, hyperparameters, integers.

They run before any wallet is opened or the ledger is touched, so a typo costs nothing
(no password typed, no nonce used). Each raises :class:`InputError` whose message starts
with the option at fault; the commands turn it into one ``error: ...`` line. Keeping
them free of I/O is what lets the unit tests cover every refusal without a process.
Ranges the chain itself checks (``tempo >= 1``, a uid that exists) are left to the
chain, so there is one source of truth and the ledger's error code reaches the user.
"""

from __future__ import annotations

import math
import re

from subnetlab.chain.hyperparameters import Hyperparameters
from subnetlab.chain.yuma import max_upscale_u16

__all__ = [
    "U16_MAX",
    "U64_MAX",
    "HyperparameterValue",
    "InputError",
    "parse_hyperparameters",
    "parse_uids",
    "parse_weights",
    "parse_whole",
    "weight_vector",
]

U16_MAX = 65535
U64_MAX = 2**64 - 1
_NUMBER_RE = re.compile(r"\d{1,20}")

HyperparameterValue = bool | int | float


class InputError(ValueError):
    """A command-line value that cannot be used; the message names the option."""


def parse_whole(text: str, option: str, lo: int, hi: int) -> int:
    """A whole number in ``[lo, hi]`` written in plain decimal digits (no sign, no 1e3)."""
    value = text.strip()
    if not _NUMBER_RE.fullmatch(value) or not lo <= int(value) <= hi:
        raise InputError(f"{option} {text!r}: must be a whole number in [{lo}, {hi}]")
    return int(value)


def _entries(text: str, option: str) -> list[str]:
    """The comma-separated entries of a list option; none may be empty."""
    if not text.strip():
        raise InputError(f"{option}: give at least one entry, e.g. {option} 0,1")
    entries = [entry.strip() for entry in text.split(",")]
    for index, entry in enumerate(entries):
        if not entry:
            raise InputError(f"{option} {text!r}: entry {index} is empty")
    return entries


def parse_uids(text: str, option: str = "--uids", distinct: bool = True) -> list[int]:
    """Uids 0..65535 from ``0,1,2`` (whether they exist is the chain's call); with
    ``distinct``, a repeated uid is refused (a weight vector names each uid once)."""
    uids: list[int] = []
    for entry in _entries(text, option):
        if not _NUMBER_RE.fullmatch(entry) or int(entry) > U16_MAX:
            raise InputError(f"{option}: {entry!r} is not a uid (a whole number 0..{U16_MAX})")
        if distinct and int(entry) in uids:
            raise InputError(f"{option}: uid {int(entry)} appears more than once")
        uids.append(int(entry))
    return uids


def parse_weights(text: str) -> list[float]:
    """Finite, non-negative weights from ``0.5,0.5``, at least one of them positive."""
    weights: list[float] = []
    for entry in _entries(text, "--weights"):
        try:
            value = float(entry)
        except ValueError:
            raise InputError(f"--weights: {entry!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise InputError(f"--weights: {entry!r} must be a finite number >= 0")
        weights.append(value)
    if not any(weights):
        raise InputError("--weights: at least one weight must be positive")
    return weights


def weight_vector(uids: str, weights: str) -> tuple[list[int], list[int]]:
    """uids and their weights as the chain stores them (u16, largest = 65535).

    Upscaling here rather than on the chain means the values committed in a
    commit-reveal hash are exactly the integers that will be revealed.
    """
    uid_list, values = parse_uids(uids), parse_weights(weights)
    if len(uid_list) != len(values):
        raise InputError(
            f"--uids has {len(uid_list)} entries but --weights has {len(values)}; "
            "they must match"
        )
    return uid_list, [int(v) for v in max_upscale_u16(values)]


def _hyperparameter_value(name: str, raw: str) -> HyperparameterValue:
    """``raw`` as the type the chain's Hyperparameters model declares for ``name``."""
    field = Hyperparameters.model_fields.get(name)
    if field is None:
        known = ", ".join(sorted(Hyperparameters.model_fields))
        raise InputError(f"--param {name}: not a hyperparameter (known: {known})")
    kind = field.annotation
    if kind is bool:
        if raw.lower() not in ("true", "false"):
            raise InputError(f"--param {name}={raw}: must be true or false")
        return raw.lower() == "true"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise InputError(f"--param {name}={raw}: must be an integer") from None
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"--param {name}={raw}: must be a number") from None
    if not math.isfinite(value):
        raise InputError(f"--param {name}={raw}: must be finite")
    return value


def parse_hyperparameters(pairs: list[str] | None) -> dict[str, HyperparameterValue]:
    """``--param NAME=VALUE`` options as a typed dict; the chain checks the ranges."""
    changes: dict[str, HyperparameterValue] = {}
    for pair in pairs or []:
        name, sep, raw = (part.strip() for part in pair.partition("="))
        if not sep or not name or not raw:
            raise InputError(f"--param {pair!r}: expected NAME=VALUE, e.g. --param tempo=10")
        if name in changes:
            raise InputError(f"--param {name}: given more than once")
        changes[name] = _hyperparameter_value(name, raw)
    return changes
