"""The validator's query deadline holds against a miner that trickles its answer, and an
answer counts only with its miner's signature.

httpx's timeout bounds each read, not the exchange: a miner sending one byte every 0.2 s
would never trip a 1 s read timeout. The server here is a real socket on loopback that does
exactly that; the assertion is on how much of its answer it managed to send before the
validator hung up (a fraction), not on how long anything took.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from subnetlab.keys import Keypair
from subnetlab.protocol.answers import answer_headers, sign_answer
from subnetlab.validator.miners import MinerAnswer, ask

BODY_BYTES = 1000
TRICKLE_S = 0.2


async def _trickling_miner(sent: list[int]) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n" % BODY_BYTES)
        try:
            for _ in range(BODY_BYTES):
                writer.write(b" ")
                await writer.drain()
                sent[0] += 1
                await asyncio.sleep(TRICKLE_S)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


def test_a_trickling_miner_is_cut_off_at_the_deadline() -> None:
    async def scenario() -> tuple[str | None, bool, int]:
        sent = [0]
        server = await _trickling_miner(sent)
        port = server.sockets[0].getsockname()[1]
        miner = Keypair.dev("trickle-miner")
        neuron = {"uid": 3, "hotkey": miner.ss58_address, "axon": f"http://127.0.0.1:{port}"}
        async with httpx.AsyncClient() as http:
            answer = await ask(http, Keypair.dev("trickle-validator"), neuron,
                               {"model": "m", "messages": []}, timeout_s=1.0)
        server.close()
        await server.wait_closed()
        return answer.error, answer.ok, sent[0]

    error, ok, sent = asyncio.run(scenario())
    assert not ok and error == "timeout"
    # 1 s at one byte per 0.2 s: a handful of bytes, nowhere near the 1,000 promised.
    assert 0 < sent < BODY_BYTES // 10


# ---- the miner's signature on its answer ----------------------------------------------------

MINER = Keypair.dev("ask-signing-miner")
VALIDATOR = Keypair.dev("ask-signing-validator")
ANSWER = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"4"}}],' \
         b'"usage":{"completion_tokens":1}}'


async def _answering_miner(how: str) -> asyncio.Server:
    """A loopback HTTP server answering one chat request, signed as `how` says: `good`,
    `unsigned`, `other-key` (signed by another hotkey) or `altered` (body changed after
    signing)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        lowered = {k.lower(): v for k, v in fields.items()}
        request = await reader.readexactly(int(lowered["content-length"]))
        signer = Keypair.dev("ask-someone-else") if how == "other-key" else MINER
        signed = sign_answer(signer, ANSWER, lowered["epistula-uuid"], request,
                             lowered["epistula-signed-by"])
        body = ANSWER.replace(b'"4"', b'"5"') if how == "altered" else ANSWER
        headers = "" if how == "unsigned" else "".join(
            f"{k}: {v}\r\n" for k, v in answer_headers(signed).items())
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n%s\r\n%s" % (len(body), headers.encode(), body))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


def _ask(how: str) -> MinerAnswer:
    async def scenario() -> MinerAnswer:
        server = await _answering_miner(how)
        port = server.sockets[0].getsockname()[1]
        neuron = {"uid": 2, "hotkey": MINER.ss58_address, "axon": f"http://127.0.0.1:{port}"}
        async with httpx.AsyncClient() as http:
            answer = await ask(http, VALIDATOR, neuron,
                               {"model": "m", "messages": [{"role": "user", "content": "2+2"}]},
                               timeout_s=5.0)
        server.close()
        await server.wait_closed()
        return answer

    return asyncio.run(scenario())


def test_a_signed_answer_is_kept_with_its_signature_for_the_evidence() -> None:
    answer = _ask("good")
    assert answer.ok and answer.text == "4" and answer.signed is not None
    assert answer.signed["signed_by"] == MINER.ss58_address
    assert answer.signed["requester"] == VALIDATOR.ss58_address
    assert answer.signed["body"] == ANSWER.decode()


@pytest.mark.parametrize(("how", "error"), [("unsigned", "answer_unsigned"),
                                            ("other-key", "answer_wrong_signer"),
                                            ("altered", "answer_bad_signature")])
def test_an_answer_without_its_miners_signature_is_a_failed_answer(how: str, error: str
                                                                   ) -> None:
    answer = _ask(how)
    assert not answer.ok and answer.error == error
    assert answer.text == "" and answer.signed is None and not answer.refused
