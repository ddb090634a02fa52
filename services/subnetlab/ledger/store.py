"""The ledger's durable record in Redis: genesis, every block, receipts and snapshots.

Layout (all under one prefix per chain id, so several chains can share a Redis):
    {p}:genesis           the genesis document (JSON), written once
    {p}:height            number of the newest stored block
    {p}:block:{n}         block n (JSON): header, extrinsics, receipts, state root
    {p}:receipts          hash -> "n:index" for every extrinsic ever included or failed
    {p}:snapshot          the newest snapshot: {"number", "state_root"} + state bytes
    {p}:snapshot:data     the snapshot's state bytes

A block and everything it implies (height, receipt index, optional snapshot) is written in
one MULTI/EXEC transaction guarded by WATCH on the height: a crash never leaves half a
block, and a second writer on the same chain is refused instead of forking it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis


class StoreError(RuntimeError):
    """The Redis store is inconsistent with what this ledger expects, or refused a write."""


@dataclass(frozen=True)
class Snapshot:
    number: int
    state_root: str
    data: bytes


class BlockStore:
    """Blocks, receipts and snapshots of one chain in Redis."""

    def __init__(self, client: redis.Redis, chain_id: str) -> None:
        self.client = client
        self.prefix = f"subnetlab:{chain_id}"

    @classmethod
    def from_url(cls, url: str, chain_id: str) -> BlockStore:
        return cls(redis.Redis.from_url(url), chain_id)

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    # --- genesis -----------------------------------------------------------------------

    def genesis(self) -> dict[str, Any] | None:
        raw = self.client.get(self._key("genesis"))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    def write_genesis(self, genesis: dict[str, Any]) -> None:
        """Record the genesis once; a different genesis for the same chain is an error."""
        encoded = json.dumps(genesis, sort_keys=True)
        if self.client.set(self._key("genesis"), encoded, nx=True):
            return
        stored = self.genesis()
        if stored != json.loads(encoded):
            raise StoreError(
                f"redis already holds chain '{self.prefix.split(':', 1)[1]}' with another "
                "genesis; use another --redis-url or chain id, or start from that genesis"
            )

    # --- blocks ------------------------------------------------------------------------

    def height(self) -> int:
        """Newest stored block number; 0 when only genesis exists."""
        raw = self.client.get(self._key("height"))
        return 0 if raw is None else int(raw)

    def append_block(
        self,
        number: int,
        encoded: str,
        receipt_hashes: list[str],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Write block `number` (its JSON, `encoded`) atomically after the stored height.

        The caller encodes the block: the ledger splices the extrinsics' JSON in without
        decoding and re-encoding them, which is most of a block's bytes. Every failure,
        Redis's own included (connection lost, write refused), is a `StoreError`: the block
        may or may not be stored, which only a restart (replaying the store) settles.
        """
        height_key = self._key("height")
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(height_key)  # type: ignore[no-untyped-call]
                current = pipe.get(height_key)
                expected = 0 if current is None else int(current)
                if number != expected + 1:
                    raise StoreError(
                        f"block {number} does not follow the stored height {expected}: "
                        "another ledger is writing this chain"
                    )
                pipe.multi()
                pipe.set(self._key("block", number), encoded)
                pipe.set(height_key, number)
                receipts: dict[str | bytes | bytearray | memoryview[int] | int | float,
                               str | bytes | bytearray | memoryview[int] | int | float] = {
                    digest: f"{number}:{i}" for i, digest in enumerate(receipt_hashes)
                }
                if receipts:
                    pipe.hset(self._key("receipts"), mapping=receipts)
                if snapshot is not None:
                    pipe.set(self._key("snapshot", "data"), snapshot.data)
                    pipe.set(
                        self._key("snapshot"),
                        json.dumps({"number": snapshot.number, "state_root": snapshot.state_root}),
                    )
                pipe.execute()
            except redis.WatchError as exc:
                raise StoreError(
                    f"block {number}: the chain height changed while writing; another "
                    "ledger is writing this chain"
                ) from exc
            except redis.RedisError as exc:
                raise StoreError(f"block {number}: redis failed the write: {exc}") from exc

    def block(self, number: int) -> dict[str, Any] | None:
        raw = self.client.get(self._key("block", number))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    def blocks(
        self, start: int, end: int | None = None, batch: int = 256
    ) -> Iterator[dict[str, Any]]:
        """Blocks start..end inclusive (end defaults to the stored height), in order."""
        last = self.height() if end is None else end
        for first in range(start, last + 1, batch):
            numbers = range(first, min(first + batch, last + 1))
            raws = self.client.mget([self._key("block", n) for n in numbers])
            for n, raw in zip(numbers, raws, strict=True):
                if raw is None:
                    raise StoreError(f"block {n} is missing from the store")
                yield cast(dict[str, Any], json.loads(raw))

    def receipt_location(self, extrinsic_hash: str) -> tuple[int, int] | None:
        """(block number, index in block) of an extrinsic, if it was ever processed."""
        raw = self.client.hget(self._key("receipts"), extrinsic_hash)
        if raw is None:
            return None
        number, index = _text(raw).split(":")
        return int(number), int(index)

    # --- snapshots ---------------------------------------------------------------------

    def latest_snapshot(self) -> Snapshot | None:
        meta_raw, data = self.client.mget(self._key("snapshot"), self._key("snapshot", "data"))
        if meta_raw is None or data is None:
            return None
        meta = json.loads(meta_raw)
        blob = data if isinstance(data, bytes) else data.encode()
        return Snapshot(number=int(meta["number"]), state_root=meta["state_root"], data=blob)

    def wipe(self) -> None:
        """Delete this chain's keys (`ledger serve --new-chain`, and tests)."""
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keys:
            self.client.delete(*keys)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
