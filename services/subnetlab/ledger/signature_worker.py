"""Signature checks of the ledger's door, done in a worker process.

An sr25519 verification costs about 130 µs of CPU on the CI machine, a third of all the
ledger's work per extrinsic, and the bindings hold the GIL, so a thread would not run
beside the writer's loop. A worker process does: the writer hands it a batch's
(signature, payload, public key) triples, keeps decoding and checking other requests,
dry-running and sealing blocks meanwhile, and admits the batch in its turn once the
verdicts are back. Nothing is trusted that the worker did not check: a triple that is not
a valid signature is `False`, exactly as `keys.keypair.verify` answers in process.

The worker is `python -m subnetlab.ledger.signature_worker`, talking over its stdin and stdout
(frames below), answering in order; it exits when its stdin closes, so it never outlives
the ledger, even one killed with SIGKILL. It holds no state, so losing it loses nothing:
a batch whose worker died is checked in process, and so is everything after (logged
once).

Frames: a request is ``count:u32 size:u32`` then ``size`` bytes of ``count`` records
``signature[64] public_key[32] length:u32 payload[length]``; the answer is
``cpu_seconds:f64`` (the worker's CPU time so far) then ``count`` bytes, 1 for a valid
signature and 0 for anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from subnetlab.keys.keypair import verify

log = logging.getLogger(__name__)

Triple = tuple[bytes, bytes, bytes]
"""(signature, payload, public key): one signature check."""

_HEAD = struct.Struct("<II")
_RECORD = struct.Struct("<64s32sI")
_CPU = struct.Struct("<d")


def verify_all(triples: list[Triple]) -> list[bool]:
    """Each triple's verdict, in process."""
    return [verify(signature, payload, public_key) for signature, payload, public_key in triples]


def encode_request(triples: list[Triple]) -> bytes:
    """One request frame for `triples` (signatures of other lengths than 64 bytes never
    reach here: the extrinsic model refuses them)."""
    parts = [_RECORD.pack(signature, public_key, len(payload)) + payload
             for signature, payload, public_key in triples]
    body = b"".join(parts)
    return _HEAD.pack(len(triples), len(body)) + body


def decode_request(body: bytes, count: int) -> Iterator[Triple]:
    """The triples of a request frame's body."""
    at = 0
    for _ in range(count):
        signature, public_key, length = _RECORD.unpack_from(body, at)
        at += _RECORD.size
        yield signature, body[at : at + length], public_key
        at += length


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: answer every request frame in order until `requests` ends."""
    while True:
        head = requests.read(_HEAD.size)
        if len(head) < _HEAD.size:
            return
        count, size = _HEAD.unpack(head)
        body = requests.read(size)
        if len(body) < size:
            return
        verdicts = bytes(verify_all(list(decode_request(body, count))))
        answers.write(_CPU.pack(time.process_time()) + verdicts)
        answers.flush()


class WorkerGoneError(RuntimeError):
    """The worker process ended (or never started): check in process."""


@dataclass
class SignatureWorker:
    """The writer's side of one worker process (see the module docstring)."""

    process: asyncio.subprocess.Process | None
    cpu_seconds: float = 0.0
    """The worker's CPU time, as of its latest answer."""
    waiting: deque[tuple[int, asyncio.Future[list[bool]]]] = field(default_factory=deque)
    reader: asyncio.Task[None] | None = None
    ended: asyncio.subprocess.Process | None = None
    """The worker process once closed (`aclose` waits for it)."""

    @classmethod
    async def start(cls) -> SignatureWorker:
        """A worker process, with this interpreter and the same code; the first batches
        wait in its pipe while it starts. None started means checking in process."""
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "subnetlab.ledger.signature_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        except OSError as exc:
            log.warning("no signature worker (%s); checking signatures in process", exc)
            return cls(None)
        worker = cls(process)
        worker.reader = asyncio.create_task(worker._read_answers())
        return worker

    @property
    def running(self) -> bool:
        return self.process is not None

    async def verify(self, triples: list[Triple]) -> list[bool]:
        """The verdicts, from the worker; in process when there is none (any more)."""
        if self.process is not None and self.process.stdin is not None:
            future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
            self.waiting.append((len(triples), future))
            try:
                self.process.stdin.write(encode_request(triples))
                await self.process.stdin.drain()
                return await asyncio.shield(future)
            except (WorkerGoneError, ConnectionError):
                self._gone("the signature worker ended")
        return verify_all(triples)

    async def _read_answers(self) -> None:
        """Hand each answer to the request it answers (they come in order)."""
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        try:
            while True:
                cpu = await stdout.readexactly(_CPU.size)
                if not self.waiting:  # an answer to nothing: not our worker's protocol
                    break
                count, future = self.waiting[0]
                verdicts = await stdout.readexactly(count)
                self.cpu_seconds = _CPU.unpack(cpu)[0]
                self.waiting.popleft()
                if not future.done():
                    future.set_result([v == 1 for v in verdicts])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self._gone("the signature worker ended")

    def _gone(self, why: str) -> None:
        if self.process is not None:
            log.warning("%s; checking signatures in process from now on", why)
            self.close()
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(WorkerGoneError(why))

    def close(self) -> None:
        """Stop the worker: its stdin closes and it exits (it holds nothing)."""
        process, self.process = self.process, None
        if process is None:
            return
        self.ended = process
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()  # from inside itself too: it ends at its next await

    async def aclose(self) -> None:
        """`close`, then wait until the worker has exited and its pipes are closed."""
        self.close()
        if self.ended is not None:
            await self.ended.wait()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


if __name__ == "__main__":
    # Ctrl-C reaches the whole foreground process group: the ledger stops, closes our
    # stdin and we end then (no KeyboardInterrupt traceback of our own)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
