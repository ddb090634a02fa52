"""What a ledger remembers of its chain outside Redis, to notice a store that lost blocks.

A Redis that loses its data (not durable, a volume wiped, a restored old backup) looks to
a restarting ledger like a chain that never started: it would start again at block 0, and
extrinsics signed for the lost blocks would be valid again on the new chain. So the ledger
keeps, beside the store (in its data directory), a small file per store and chain: the
genesis hash and the highest block it has served. On startup a store lower than that, or
holding another genesis, is refused; `ledger serve --new-chain` starts a new chain there
on purpose (with the dev genesis, under a new salt: another genesis hash, so nothing
signed for the old chain is valid on the new one; a dev chain that starts on an empty
store with nothing remembered gets a new salt too).

The file is rewritten (write + rename, no fsync) after every stored block, before its
receipts are reported: about 0.2 ms per block (a block's seal is 0.03 ms). After a crash
of the host it may lag by a few blocks, which only narrows what a loss is noticed for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from subnetlab.chain.model import Genesis
from subnetlab.ledger.store import BlockStore, StoreError
from subnetlab.ledger.verify import genesis_hash


class LostStoreError(StoreError):
    """The store has less of the chain than this ledger already served, or another chain."""


@dataclass(frozen=True)
class Remembered:
    genesis_hash: str
    height: int
    salt: str


class ChainMemory:
    """The file `{data_dir}/chain-{chain_id}-{store}.json` (store: a hash of its URL)."""

    def __init__(self, data_dir: Path, chain_id: str, store_url: str) -> None:
        store = hashlib.blake2b(store_url.encode(), digest_size=8).hexdigest()
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in chain_id)
        self.path = data_dir / f"chain-{safe_id}-{store}.json"
        self._tmp = self.path.with_suffix(".tmp")
        self.store_url = store_url
        self._genesis_hash = ""
        self._salt = ""

    def load(self) -> Remembered | None:
        """What was remembered; None when nothing was. An unreadable file is a
        `LostStoreError` naming it: guessing could hide a lost store."""
        try:
            raw = json.loads(self.path.read_text())
            return Remembered(str(raw["genesis_hash"]), int(raw["height"]),
                              str(raw.get("salt", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LostStoreError(f"{self.path}: unreadable ({exc}); remove it to start "
                                 "without checking for a lost store") from None

    def check(self, genesis_hash: str, store_height: int) -> None:
        """Refuse a store that lost blocks this ledger served, or holds another genesis."""
        known, store_url = self.load(), self.store_url
        if known is None:
            return
        again = ("to start a new chain there on purpose, run `subnetlab ledger serve "
                 "--new-chain` (its old extrinsics will not be valid on it)")
        if known.genesis_hash != genesis_hash:
            raise LostStoreError(
                f"the store at {store_url} was serving the chain with genesis "
                f"{known.genesis_hash} up to block {known.height}, not genesis {genesis_hash};"
                f" restore that store or give its genesis, or {again}")
        if store_height < known.height:
            raise LostStoreError(
                f"the store at {store_url} lost blocks: it holds block {store_height} but "
                f"this ledger already served block {known.height} of genesis {genesis_hash}"
                f" ({self.path}); restore the store (its append-only file), or {again}")

    def start(self, genesis_hash: str, salt: str) -> None:
        """Remember the chain being served (before any block of it is reported)."""
        self._genesis_hash, self._salt = genesis_hash, salt

    def record(self, height: int) -> None:
        """Remember that block `height` was stored (and is about to be reported);
        `StoreError` when the file cannot be written (the node then stops, crash-only)."""
        try:
            self._tmp.write_text(json.dumps(
                {"genesis_hash": self._genesis_hash, "height": height, "salt": self._salt}))
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise StoreError(f"cannot remember block {height} in {self.path}: "
                             f"{exc.strerror or exc}") from None

    def forget(self) -> None:
        """`--new-chain`: the old chain is given up on purpose."""
        self.path.unlink(missing_ok=True)


def dev_salt(memory: ChainMemory, stored_genesis: dict[str, object] | None) -> str:
    """The salt the dev genesis runs under: the one this data dir remembers, else the
    store's, else (a dev chain that starts now) a new random one.

    Every dev chain started afresh is thereby another chain: even when the data dir went
    with the store, nothing signed for an earlier dev chain is valid on the new one.
    """
    known = memory.load()
    if known is not None:
        return known.salt
    if stored_genesis is not None:
        salt = stored_genesis.get("salt", "")
        return salt if isinstance(salt, str) else ""
    return new_salt()


def new_salt() -> str:
    """A salt no chain had before (64 random bits)."""
    return secrets.token_hex(8)


def start_new_chain(memory: ChainMemory, store: BlockStore, genesis: Genesis,
                    dev: bool) -> Genesis:
    """`--new-chain`: forget the old chain (the store's keys of this chain id, the memory)
    and return the genesis of the new one, whose hash differs from the old one's.

    The dev genesis gets a fresh random salt. A genesis from a file must already differ
    from the old chain's (its `salt`, say); otherwise it is refused, before anything is
    deleted: the same genesis hash would make the old chain's extrinsics valid again.
    """
    old = memory.load()
    stored = store.genesis()
    old_hashes = {old.genesis_hash} if old is not None else set()
    if stored is not None:
        with contextlib.suppress(ValidationError):  # an unreadable one is deleted anyway
            old_hashes.add(genesis_hash(Genesis.model_validate(stored)))
    if dev:
        genesis = genesis.model_copy(update={"salt": new_salt()})
    elif genesis_hash(genesis) in old_hashes:
        raise LostStoreError(
            f"--new-chain: this genesis is the old chain's (genesis {genesis_hash(genesis)}):"
            " change its \"salt\" so that nothing signed for the old chain is valid on the "
            "new one")
    store.wipe()
    memory.forget()
    return genesis
