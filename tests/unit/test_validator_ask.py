"""The validator's query deadline holds against a miner that trickles its answer.

httpx's timeout bounds each read, not the exchange: a miner sending one byte every 0.2 s
would never trip a 1 s read timeout. The server here is a real socket on loopback that does
exactly that; the assertion is on how much of its answer it managed to send before the
validator hung up (a fraction), not on how long anything took.
"""

from __future__ import annotations

import asyncio

import httpx

from subnetlab.keys import Keypair
from subnetlab.validator.miners import ask

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
