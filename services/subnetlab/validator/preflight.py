"""Before a validator starts: are its ledger, its subnet and its Redis there?

`validator run` checks each once, with a bounded wait for the ledger (it may still be
starting), and turns what is wrong into one line that names the flag. Once running, the
loop rides out outages by itself (validator/health.py); at startup a wrong flag should not
look like an outage.
"""

from __future__ import annotations

import asyncio
import time

import redis

from subnetlab.ledger.client import AsyncLedgerClient, LedgerError, LedgerUnreachable


class PreflightError(RuntimeError):
    """A dependency is missing or wrong; the message names the flag."""


async def check_ledger(ledger_url: str, netuid: int, wait_s: float) -> None:
    """The ledger answers and holds subnet `netuid`; waits up to `wait_s` for it."""
    try:
        client = AsyncLedgerClient(ledger_url, timeout=5)
    except ValueError:
        raise PreflightError(f"--ledger {ledger_url}: must look like http://HOST:PORT") from None
    deadline = time.monotonic() + wait_s
    reason = "no answer"
    async with client:
        while True:
            try:
                await client.subnet(netuid)
                return
            except LedgerError as exc:
                if exc.status == 404:
                    raise PreflightError(f"--netuid {netuid}: no such subnet on the ledger at "
                                         f"{ledger_url}") from None
                reason = f"HTTP {exc.status}"
            except LedgerUnreachable as exc:
                reason = str(exc)
            if time.monotonic() >= deadline:
                raise PreflightError(f"--ledger {ledger_url}: unreachable after {wait_s:g} s "
                                     f"({reason})")
            await asyncio.sleep(0.25)


def check_redis(redis_url: str) -> None:
    """Redis at `redis_url` answers PING."""
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise PreflightError(f"--redis-url {redis_url}: unreachable ({exc})") from None
