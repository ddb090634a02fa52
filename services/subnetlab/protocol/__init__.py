"""The signed request protocol between validators and miners (Epistula-style, version 2).

Validator side::

    async with httpx.AsyncClient() as client:
        response = await signed_post(client, f"{axon}/v1/chat/completions", validator_key,
                                     miner_hotkey, {"model": ..., "messages": [...]})

Miner side (one guard and one gate per miner; refresh the view from the ledger's blocks)::

    guard = RequestGuard(miner_key.ss58_address, StaticMetagraph.from_neurons(rows))
    gate = StakePriorityGate(concurrency=8, max_queue=64)

    try:
        guard.check_headers(request.headers)                # unsigned: refused unread
        body = await read_capped(request, MAX_PROMPT_BODY_BYTES)  # raises BodyError (413)
        admission = guard.check(request.headers, body)      # raises Refusal
        async with gate.slot(admission.stake):              # raises QueueFull
            return await serve(decode_json(body), admission)  # BodyError (400 too_deep)
    except BodyError as bad:                                # too_large, too_deep
        return JSONResponse(bad.as_json(), status_code=bad.status)
    except QueueFull as full:
        refusal = busy_refusal(full)                        # 429 busy
    except Refusal as refused:
        refusal = refused
    return JSONResponse(refusal.as_json(), status_code=refusal.status)

    guard.replace_metagraph(StaticMetagraph.from_neurons(new_rows))  # on each new metagraph

Every answer goes back signed by the miner's hotkey (`sign_answer` + `answer_headers`; a
stream ends with a signature comment, `split_stream`); the validator checks it with
`check_answer` (raises AnswerRejected) and keeps the SignedAnswer as evidence.

The exact scheme, the order of checks and the reasons are in ``docs/protocol.md``.
"""

from subnetlab.protocol.answers import (
    AnswerRejected,
    SignedAnswer,
    answer_headers,
    check_answer,
    sign_answer,
    split_stream,
)
from subnetlab.protocol.client import encode_json, signed_post
from subnetlab.protocol.epistula import (
    EPISTULA_VERSION,
    HEADER_NAMES,
    MalformedHeaders,
    SignedRequest,
    parse_headers,
    sign_request,
    signing_message,
    verify_request,
    verify_signature,
)
from subnetlab.protocol.guard import (
    DEFAULT_FRESHNESS_MS,
    Admission,
    Refusal,
    RefusalCode,
    RequestGuard,
    busy_refusal,
)
from subnetlab.protocol.limits import RateLimit
from subnetlab.protocol.metagraph import CallerInfo, MetagraphView, StaticMetagraph
from subnetlab.protocol.priority import QueueFull, StakePriorityGate

__all__ = [
    "DEFAULT_FRESHNESS_MS",
    "EPISTULA_VERSION",
    "HEADER_NAMES",
    "Admission",
    "AnswerRejected",
    "CallerInfo",
    "MalformedHeaders",
    "MetagraphView",
    "QueueFull",
    "RateLimit",
    "Refusal",
    "RefusalCode",
    "RequestGuard",
    "SignedAnswer",
    "SignedRequest",
    "StakePriorityGate",
    "StaticMetagraph",
    "answer_headers",
    "busy_refusal",
    "check_answer",
    "encode_json",
    "parse_headers",
    "sign_answer",
    "sign_request",
    "signed_post",
    "signing_message",
    "split_stream",
    "verify_request",
    "verify_signature",
]
