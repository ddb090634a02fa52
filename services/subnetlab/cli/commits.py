"""Weight commits saved on disk, so `weights reveal` can find the salt `weights commit` drew.

A commit-reveal subnet only stores a hash; the uids, weights, salt and version key behind
it exist nowhere but here until they are revealed. So the record is written (0600, in an
owner-only directory, atomically) *before* the commit is submitted: a commit whose salt
is lost can never be revealed. Records live under ``$SUBNETLAB_HOME/commits/`` as
``NETUID-HOTKEY-HASH.json`` and carry the chain's genesis hash, so a reveal never picks
up a commit made on another chain (a wiped local net, another ``--ledger``).

The reveal must land in exactly the epoch ``commit epoch + commit_reveal_period``; the
receipt of the commit names only its block, so :func:`epoch_at_block` works out which
epoch that block was in from the subnet's schedule.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from subnetlab.chain.weights import weights_commit_hash
from subnetlab.cli.errors import CliError
from subnetlab.wallet import subnetlab_home, write_private

__all__ = [
    "SALT_BYTES",
    "CommitNotFound",
    "SavedCommit",
    "blocks_until_epoch",
    "commits_dir",
    "discard",
    "epoch_at_block",
    "new_commit",
    "pick",
    "save",
    "saved_commits",
]

SALT_BYTES = 16
FORMAT_VERSION = 1


class CommitNotFound(CliError, ValueError):  # noqa: N818 -- reads well at the call site
    """No saved commit matches (or several do and the user must pick one)."""


@dataclass(frozen=True)
class SavedCommit:
    """Everything needed to reveal one commit, and where it was made."""

    genesis_hash: str
    hotkey: str
    netuid: int
    uids: list[int]
    weights: list[int]
    salt: str
    version_key: int
    commit_hash: str
    created: float
    block: int | None = None
    """Block that included the commit (None until the ledger has answered)."""
    reveal_epoch: int | None = None
    """Epoch in which the reveal must land (None until the commit was included)."""

    @property
    def file_name(self) -> str:
        return f"{self.netuid}-{self.hotkey}-{self.commit_hash.removeprefix('0x')}.json"

    def reveal_params(self) -> dict[str, Any]:
        """The params of the reveal_weights extrinsic."""
        return {"netuid": self.netuid, "uids": self.uids, "weights": self.weights,
                "salt": self.salt, "version_key": self.version_key}

    def included(self, block: int, reveal_epoch: int) -> SavedCommit:
        """This record once the ledger included the commit."""
        return replace(self, block=block, reveal_epoch=reveal_epoch)


def commits_dir() -> Path:
    """Where saved commits live: ``$SUBNETLAB_HOME/commits`` (0700)."""
    return subnetlab_home() / "commits"


def new_commit(
    genesis_hash: str, hotkey: str, netuid: int, uids: list[int], weights: list[int],
    version_key: int,
) -> SavedCommit:
    """A commit of these weights with a fresh random salt, hashed as the chain will."""
    salt = secrets.token_hex(SALT_BYTES)
    commit_hash = weights_commit_hash(hotkey, netuid, uids, weights, salt, version_key)
    return SavedCommit(genesis_hash, hotkey, netuid, list(uids), list(weights), salt,
                       version_key, commit_hash, time.time())


def save(commit: SavedCommit) -> Path:
    """Write (or rewrite) the record; owner-only, atomic."""
    path = commits_dir() / commit.file_name
    document = {"version": FORMAT_VERSION, **asdict(commit)}
    write_private(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def discard(commit: SavedCommit) -> None:
    """Forget a commit that was revealed, refused, or expired."""
    (commits_dir() / commit.file_name).unlink(missing_ok=True)


def _load(path: Path) -> SavedCommit | None:
    """A record, or None for a file that is not one (left alone, never deleted)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.pop("version", None) != FORMAT_VERSION:
        return None
    try:
        return SavedCommit(**document)
    except TypeError:
        return None


def saved_commits(genesis_hash: str, hotkey: str, netuid: int) -> list[SavedCommit]:
    """This hotkey's saved commits on this subnet of this chain, oldest first."""
    directory = commits_dir()
    if not directory.is_dir():
        return []
    found = [_load(path) for path in directory.glob(f"{netuid}-{hotkey}-*.json")]
    return sorted(
        (c for c in found if c is not None and c.genesis_hash == genesis_hash
         and c.hotkey == hotkey and c.netuid == netuid),
        key=lambda c: c.created,
    )


def pick(saved: list[SavedCommit], wanted: str | None, netuid: int) -> SavedCommit:
    """The commit to reveal: the one named by ``wanted`` (a hash), or the only one."""
    if wanted is not None:
        target = "0x" + wanted.lower().removeprefix("0x")
        saved = [c for c in saved if c.commit_hash == target]
    if not saved:
        which = f" {wanted}" if wanted else ""
        raise CommitNotFound(
            f"no saved commit{which} for this hotkey on subnet {netuid} of this chain in "
            f"{commits_dir()}; run `subnetlab weights commit` first"
        )
    if len(saved) > 1:
        hashes = ", ".join(c.commit_hash for c in saved)
        raise CommitNotFound(
            f"{len(saved)} saved commits on subnet {netuid} ({hashes}); "
            "pick one with --commit HASH"
        )
    return saved[0]


def epoch_at_block(epochs_run: int, last_epoch_block: int, tempo: int, block: int) -> int:
    """The subnet's ``epochs_run`` as extrinsics of ``block`` saw it.

    A block opens by running the epochs that are due, then applies its extrinsics, so an
    extrinsic in the block of an epoch already sees it. Epochs run every ``tempo`` blocks,
    so those after ``block`` are counted back from the last one. (If the tempo changed in
    between, the estimate can be off; the chain's reveal_too_early then says so.)
    """
    if last_epoch_block <= block:
        return epochs_run
    return epochs_run - ((last_epoch_block - block - 1) // tempo + 1)


def blocks_until_epoch(
    target: int, epochs_run: int, next_epoch_block: int, block: int, tempo: int
) -> int:
    """Blocks from ``block`` until the subnet has run ``target`` epochs (0: it has).

    The next epoch runs at ``next_epoch_block``; each later one ``tempo`` blocks after.
    """
    if target <= epochs_run:
        return 0
    return max(next_epoch_block - block, 0) + (target - epochs_run - 1) * tempo
