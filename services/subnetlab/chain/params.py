"""Strict reading of an extrinsic's parameters.

The ledger hands us JSON-decoded `params`; a transition must never fail with a TypeError
half-way through a mutation, so every value is checked for type and range here, before the
transition plans anything. Checks are strict: an int field refuses `True`, `1.0` and `"1"`,
because a signed extrinsic means exactly what it says. Unknown parameters are refused too
(`done()`), so a typo such as `amout` is an error instead of a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeGuard, TypeVar

import numpy as np
from numpy.typing import NDArray

from subnetlab.chain.errors import ChainError, ErrorCode
from subnetlab.keys.ss58 import is_valid_ss58

_INVALID = ErrorCode.INVALID_PARAM

T = TypeVar("T")

ParseMemo = dict[Hashable, tuple[Any, frozenset[str]]]
"""Parse results of one extrinsic's params, shared by the views planned over them (see
`Params.parsed`): each value with the names its parse read."""


def is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    """An integer that is not a bool (numpy integers count: tests build params with numpy)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: object) -> TypeGuard[int | float | np.integer[Any] | np.floating[Any]]:
    """A finite int or float that is not a bool."""
    if is_int(value):
        return True
    return isinstance(value, float | np.floating) and math.isfinite(float(value))


def parse_hex(value: object, length: int, field: str) -> str:
    """`length` bytes as hex (optional 0x, any case) -> canonical lowercase '0x...' string."""
    if not isinstance(value, str):
        raise ChainError(_INVALID, f"must be a hex string, got {type(value).__name__}", field)
    body = value[2:] if value[:2] in ("0x", "0X") else value
    if len(body) != 2 * length:
        raise ChainError(
            _INVALID, f"must be {length} bytes ({2 * length} hex digits), got {len(body)}", field
        )
    try:
        bytes.fromhex(body)
    except ValueError:
        raise ChainError(_INVALID, f"{value!r} is not valid hex", field) from None
    return "0x" + body.lower()


def check_address(value: object, field: str) -> str:
    """An SS58 address of this network (prefix 42), checksum verified."""
    if not isinstance(value, str):
        raise ChainError(
            _INVALID, f"must be an SS58 address string, got {type(value).__name__}", field
        )
    if not is_valid_ss58(value):
        raise ChainError(_INVALID, f"{value!r} is not a valid SS58 address", field)
    return value


class Params:
    """A view of one extrinsic's params that records which names were read.

    `memo`, when given, is shared with earlier views of the same params: the ledger plans
    an extrinsic at its door and again in its block, and the expensive parses (256-entry
    weight lists into checked arrays) are done once (see `parsed`). The caller must not
    change the params in between; the ledger's are in a frozen extrinsic.
    """

    __slots__ = ("_memo", "_raw", "_used")

    def __init__(self, raw: object, memo: ParseMemo | None = None) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ChainError(_INVALID, f"must be an object, got {type(raw).__name__}", "params")
        for key in raw:
            if not isinstance(key, str):
                raise ChainError(
                    _INVALID, f"parameter names must be strings, got {key!r}", "params"
                )
        self._raw: dict[str, object] = raw
        self._used: set[str] = set()
        self._memo: ParseMemo = {} if memo is None else memo

    def parsed(self, key: Hashable, parse: Callable[[], T]) -> T:
        """`parse()`, or what it returned for the same `key` on a view sharing this memo.

        For parses that depend on nothing but the params and `key` (put every state value
        they use in the key), whose result is immutable: then a hit is exactly the parse.
        The names it read are marked read on a hit too, so `done` judges the same. A parse
        that raises is not remembered.
        """
        hit = self._memo.get(key)
        if hit is not None:
            value, names = hit
            self._used.update(names)
            return value  # type: ignore[no-any-return]
        outer, self._used = self._used, set()
        try:
            value = parse()
            self._memo[key] = (value, frozenset(self._used))
        finally:
            outer.update(self._used)
            self._used = outer
        return value

    def has(self, name: str) -> bool:
        """Whether `name` was given (a JSON null counts as absent)."""
        return self._raw.get(name) is not None

    def raw(self, name: str) -> object:
        """The value as given (None when absent); marks it as read."""
        self._used.add(name)
        return self._raw.get(name)

    def required(self, name: str) -> object:
        """The value, or invalid_param when it is missing."""
        value = self.raw(name)
        if value is None:
            raise ChainError(_INVALID, "is required", name)
        return value

    def int_(self, name: str, lo: int | None = 0, hi: int | None = None) -> int:
        """A required integer within [lo, hi]."""
        return check_int(self.required(name), name, lo, hi)

    def opt_int(self, name: str, default: int, lo: int | None = 0, hi: int | None = None) -> int:
        """An optional integer within [lo, hi]."""
        value = self.raw(name)
        return default if value is None else check_int(value, name, lo, hi)

    def bool_(self, name: str) -> bool:
        """A required boolean (0/1 are refused: they are ints)."""
        value = self.required(name)
        if not isinstance(value, bool | np.bool_):
            raise ChainError(_INVALID, f"must be true or false, got {value!r}", name)
        return bool(value)

    def real(self, name: str, lo: float, hi: float) -> float:
        """A required finite number within [lo, hi]."""
        value = self.required(name)
        if not is_real(value):
            raise ChainError(_INVALID, f"must be a finite number, got {value!r}", name)
        number = float(value)
        if not lo <= number <= hi:
            raise ChainError(_INVALID, f"{number} is outside [{lo}, {hi}]", name)
        return number

    def str_(self, name: str, default: str | None = None, choices: Iterable[str] = ()) -> str:
        """A string, optionally restricted to `choices`."""
        value = self.raw(name)
        if value is None:
            if default is None:
                raise ChainError(_INVALID, "is required", name)
            return default
        if not isinstance(value, str):
            raise ChainError(_INVALID, f"must be a string, got {type(value).__name__}", name)
        allowed = tuple(choices)
        if allowed and value not in allowed:
            raise ChainError(_INVALID, f"{value!r} is not one of {', '.join(allowed)}", name)
        return value

    def address(self, name: str) -> str:
        """A required SS58 address."""
        return check_address(self.required(name), name)

    def opt_address(self, name: str) -> str | None:
        """An optional SS58 address."""
        value = self.raw(name)
        return None if value is None else check_address(value, name)

    def hex32(self, name: str) -> str:
        """A required 32-byte hex digest, canonicalised to lowercase '0x...'."""
        return parse_hex(self.required(name), 32, name)

    def rest(self) -> dict[str, object]:
        """Every parameter not read so far (set_hyperparameters takes arbitrary names)."""
        extra = {k: v for k, v in self._raw.items() if k not in self._used}
        self._used.update(extra)
        return extra

    def done(self) -> None:
        """Refuse parameters the call does not take."""
        unknown = sorted(k for k in self._raw if k not in self._used)
        if unknown:
            raise ChainError(_INVALID, "unknown parameter for this call", unknown[0])


def check_int(value: object, field: str, lo: int | None = 0, hi: int | None = None) -> int:
    """An integer (not a bool) within [lo, hi]."""
    if not is_int(value):
        raise ChainError(_INVALID, f"must be an integer, got {value!r}", field)
    number = int(value)
    if lo is not None and number < lo:
        raise ChainError(_INVALID, f"{number} is below the minimum {lo}", field)
    if hi is not None and number > hi:
        raise ChainError(_INVALID, f"{number} is above the maximum {hi}", field)
    return number


def int_list(
    value: object, field: str, code: ErrorCode, lo: int, hi: int, max_len: int
) -> list[int]:
    """A list of integers in [lo, hi], at most `max_len` long; out-of-range -> `code`.

    Type errors are invalid_param; range errors use the call-specific code (invalid_uid,
    invalid_weights) because they are the ones a client most needs to tell apart.
    """
    return [int(v) for v in int_array(value, field, code, lo, hi, max_len).tolist()]


def int_array(
    value: object, field: str, code: ErrorCode, lo: int, hi: int, max_len: int
) -> NDArray[np.int64]:
    """`int_list` as an int64 array, with a fast path for lists of plain ints.

    set_weights carries up to 256 entries twice and the ledger must sustain thousands of
    extrinsics per second, so the common case is checked with C loops (type set, fromiter,
    array min/max); anything unusual falls back to the entry-by-entry check that names the
    offending index.
    """
    if not isinstance(value, list | tuple):
        raise ChainError(_INVALID, f"must be a list of integers, got {type(value).__name__}", field)
    if len(value) > max_len:
        raise ChainError(code, f"has {len(value)} entries; at most {max_len} allowed", field)
    if not value:
        return np.zeros(0, dtype=np.int64)
    if {int}.issuperset(map(type, value)):
        try:
            array = np.fromiter(value, dtype=np.int64, count=len(value))
        except OverflowError:
            pass
        else:
            if lo <= int(array.min()) and int(array.max()) <= hi:
                return array
    out: list[int] = []
    for index, item in enumerate(value):
        if not is_int(item):
            raise ChainError(_INVALID, f"entry {index} is {item!r}, not an integer", field)
        number = int(item)
        if number < lo or number > hi:
            raise ChainError(code, f"entry {index} is {number}; must be in [{lo}, {hi}]", field)
        out.append(number)
    return np.array(out, dtype=np.int64)
