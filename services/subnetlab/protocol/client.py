"""The validator's side: send a signed JSON request to a miner.

The body is serialised exactly once and those bytes are both signed and sent. Letting the
HTTP client serialise ``json=...`` itself after signing a separate ``json.dumps`` would sign
bytes that may differ from what goes on the wire (spacing, key order, escaping), and the
miner would refuse the request as ``bad_signature``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from subnetlab.keys import Keypair
from subnetlab.protocol.epistula import sign_request

__all__ = ["encode_json", "signed_post"]


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON: the bytes :func:`signed_post` signs and sends."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def signed_post(
    client: httpx.AsyncClient,
    url: str,
    keypair: Keypair,
    signed_for: str,
    json_body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout | None = None,
) -> httpx.Response:
    """POST ``json_body`` to ``url`` signed by ``keypair`` for the miner hotkey ``signed_for``.

    ``json_body`` may also be ``bytes`` already serialised (sent and signed as is). Extra
    ``headers`` are added unsigned (Epistula signs the body, not other headers); ``timeout``
    overrides the client's for this request. The response is returned whatever its status:
    a refusal is a JSON body ``{"error": {"code", "message"}}`` (see docs/protocol.md).
    """
    body = json_body if isinstance(json_body, bytes) else encode_json(json_body)
    request_headers = {"Content-Type": "application/json"}
    if headers:
        request_headers.update(headers)
    request_headers.update(sign_request(keypair, body, signed_for))
    if timeout is None:
        return await client.post(url, content=body, headers=request_headers)
    return await client.post(url, content=body, headers=request_headers, timeout=timeout)
