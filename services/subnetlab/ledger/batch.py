"""Parsing a batch body `{"extrinsics": [...]}` one item at a time (pure, no I/O).

`json.loads` of a full batch (a few MiB of weight lists) holds the event loop for well
over 100 ms on the CI machine, longer than half a fast block, so the ledger would seal
late. `iter_items` decodes the same JSON item by item (the standard library's decoder,
`raw_decode`, one array element at a time), so the caller can hand the loop back between
slices of items; the result is exactly what `json.loads` would have produced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_SHAPE = 'the body must be {"extrinsics": [...]}'


class MalformedBatchError(ValueError):
    """The body is not JSON, or not `{"extrinsics": [...]}`; `field` as the API reports it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def iter_items(raw: bytes) -> Iterator[tuple[object, int, int]]:
    """Yield each item of the batch with its size in the body (bytes, as sent) and the
    offset (in characters) reached after it.

    Raises `MalformedBatchError` when the body turns out not to be valid JSON (possibly after
    some items were yielded: callers that need all-or-nothing collect first), or not an
    object whose one key is `extrinsics`, an array. A value of the wrong shape is refused
    without decoding it: it could be megabytes of anything.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBatchError(f"body is not valid JSON: {exc}") from None
    ascii_only = raw.isascii()  # then characters are bytes, and a slice need not be encoded
    try:
        for item, start, end in _items(text):
            size = end - start if ascii_only else len(text[start:end].encode("utf-8"))
            yield item, size, end
    except json.JSONDecodeError as exc:
        raise MalformedBatchError(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder's own depth guard: hostile nesting
        raise MalformedBatchError("body is not valid JSON: nested too deeply") from None


def _skip(text: str, at: int) -> int:
    match = _WS.match(text, at)
    return match.end() if match else at


def _expect(text: str, at: int, chars: str, what: str) -> str:
    char = text[at : at + 1]
    if not char or char not in chars:
        raise json.JSONDecodeError(f"Expecting {what}", text, at)
    return char


def _items(text: str) -> Iterator[tuple[object, int, int]]:
    at = _skip(text, 0)
    if text[at : at + 1] != "{":  # not decoded further: it could be megabytes of anything
        raise MalformedBatchError(_SHAPE, "extrinsics")
    at = _skip(text, at + 1)
    if text[at : at + 1] == "}":
        raise MalformedBatchError(_SHAPE, "extrinsics")
    _expect(text, at, '"', "property name enclosed in double quotes")
    key, at = _DECODER.raw_decode(text, at)
    if key != "extrinsics":
        raise MalformedBatchError(f"unknown key {key!r}; {_SHAPE}", str(key)[:64])
    at = _skip(text, at)
    _expect(text, at, ":", "':' delimiter")
    at = _skip(text, at + 1)
    if text[at : at + 1] != "[":
        raise MalformedBatchError(_SHAPE, "extrinsics")
    at = _skip(text, (yield from _array(text, at)))
    if _expect(text, at, ",}", "',' delimiter") == ",":
        raise MalformedBatchError(f"a key after \"extrinsics\"; {_SHAPE}", "extrinsics")
    end = _skip(text, at + 1)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)


def _array(text: str, at: int) -> Generator[tuple[object, int, int], None, int]:
    """The elements of the array opening at `at`, each with the offsets where it starts
    and ends; returns the offset after the `]`."""
    at = _skip(text, at + 1)
    if text[at : at + 1] == "]":
        return at + 1
    while True:
        item, end = _DECODER.raw_decode(text, at)
        yield item, at, end
        at = end
        at = _skip(text, at)
        if _expect(text, at, ",]", "',' delimiter") == "]":
            return at + 1
        at = _skip(text, at + 1)
