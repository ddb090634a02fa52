"""Request bodies at a server's door: a size cap, read before trusting, and JSON decoding.

One mechanism for every server that takes a body (the ledger, the miner, the gateway):

- :func:`read_capped` reads a body of at most ``limit`` bytes: a declared
  ``Content-Length`` over the limit is refused before a byte is read, and a body sent
  without one (chunked) is refused as soon as it passes the limit while it streams in,
  so an oversized upload never sits in memory whole (413 ``too_large``, field ``body``);
- :func:`check_depth` refuses JSON nested deeper than :data:`MAX_JSON_DEPTH` levels
  (400 ``too_deep``, field ``body``) by scanning the bytes, before any decoder recurses
  into them: Python's decoder raises ``RecursionError`` (not a ``ValueError``) at about a
  thousand levels, which would otherwise escape as a 500;
- :func:`decode_json` is :func:`check_depth`, then ``json.loads``: what the miner and the
  gateway decode request bodies with. Invalid JSON raises ``json.JSONDecodeError`` (or
  ``UnicodeDecodeError``), both ``ValueError``, exactly as ``json.loads`` does, so each
  server keeps its own wording for it.

Refusals are :class:`BodyError`, with the status, code, message and field each server puts
in its JSON error body (``{"error": {"code", "message", "field"}}``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

__all__ = [
    "MAX_BODY_BYTES_LIMIT",
    "MAX_JSON_DEPTH",
    "MAX_PROMPT_BODY_BYTES",
    "BodyError",
    "chat_openapi",
    "check_depth",
    "declared_length",
    "decode_json",
    "read_capped",
]

MAX_JSON_DEPTH = 64
"""The most levels of nested arrays and objects a request body may have (``[[1]]`` is 2).

Chat requests and extrinsics need fewer than ten; 64 leaves room for any honest tool-call
schema while staying far below the decoder's own recursion limit."""

MAX_PROMPT_BODY_BYTES = 1024 * 1024
"""The body cap of a chat request (the miner's and the gateway's ``/v1/chat/completions``):
1 MiB, room for a prompt of well over 100,000 tokens of context."""

MAX_BODY_BYTES_LIMIT = 64 * 1024 * 1024
"""The largest body cap a server's ``--max-body-bytes`` may set: 64 MiB. A cap is read
into memory whole before it is decoded, so one far above any honest request (a chat
prompt, a batch of extrinsics) only widens what a flood of large bodies can cost."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyError(Exception):
    """A request body refused at the door: answer ``status`` with :meth:`as_json`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = "body"
                 ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def as_json(self) -> dict[str, dict[str, str | None]]:
        """``{"error": {"code", "message", "field"}}``, the servers' error format."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


def declared_length(headers: Any, limit: int) -> None:
    """Refuse (413 ``too_large``) a declared ``Content-Length`` over ``limit``, unread."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "too_large", f"body is {int(declared)} bytes; at most {limit}")


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (413 ``too_large``, field ``body``) past ``limit`` bytes.

    A declared Content-Length over the limit is refused before a byte is read; a body
    without one (chunked) is read in chunks and refused as soon as it passes the limit,
    so an oversized upload never sits in memory whole.
    """
    declared_length(request.headers, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "too_large", f"body is over {limit} bytes; at most {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def check_depth(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse (400 ``too_deep``) JSON whose arrays and objects nest past ``max_depth``.

    A scan of the bytes, not a decode: strings are skipped (brackets inside them do not
    count), then the brackets left are counted. It never recurses, so it is safe on any
    input; on invalid JSON it may over- or under-count, and the decoder then refuses it.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if len(brackets) <= max_depth:  # cannot be deeper than its count of brackets
        return
    depth = 0
    for char in brackets:
        if char in b"[{":
            depth += 1
            if depth > max_depth:
                raise BodyError(400, "too_deep",
                                f"JSON is nested deeper than {max_depth} levels")
        else:
            depth -= 1


def decode_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(raw)`` after :func:`check_depth`: ``BodyError`` when nested too deeply,
    ``ValueError`` (as ``json.loads`` raises it) when not JSON."""
    check_depth(raw, max_depth)
    try:
        return json.loads(raw)
    except RecursionError:  # a body the scan misjudged (e.g. UTF-16): still refused
        raise BodyError(400, "too_deep",
                        f"JSON is nested deeper than {max_depth} levels") from None


CHAT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": {
            "type": "object", "required": ["role", "content"],
            "properties": {"role": {"type": "string"}, "content": {"type": "string"}}}},
        "max_tokens": {"type": "integer"},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object",
                           "properties": {"include_usage": {"type": "boolean"}}},
    },
}
"""An OpenAI chat request as a chat endpoint's OpenAPI document declares it."""


def chat_openapi(headers: list[str], limit: int) -> dict[str, Any]:
    """The ``openapi_extra`` of a ``/v1/chat/completions`` that reads its body by hand:
    the chat request body and the ``headers`` it checks (declared, not validated by
    FastAPI: the handler refuses each fault with its own code), so clients and fuzzers
    see what the endpoint takes. ``limit`` is the body cap, for the description."""
    return {
        "requestBody": {"required": True, "description": f"at most {limit} bytes, JSON "
                        f"nested at most {MAX_JSON_DEPTH} levels",
                        "content": {"application/json": {"schema": CHAT_REQUEST_SCHEMA}}},
        "parameters": [{"name": name, "in": "header", "required": False,
                        "schema": {"type": "string"}} for name in headers],
    }
