"""Putting weights on chain: `set_weights`, or under commit-reveal a commit now and its
reveal in the epoch the chain expects.

Reveals are tried every round, not only when weights are due, so the rate limit never
delays one; a reveal the chain finds too early stays pending, one too late is counted and
logged as missed (never dropped silently). A restarted validator finds the reveals it
still owes from its own evidence, which records each commit's salt.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from subnetlab.chain.weights import weights_commit_hash
from subnetlab.ledger.client import LedgerError
from subnetlab.neuron.chain_writer import ChainWriter
from subnetlab.validator.health import Health
from subnetlab.validator.ledger_reads import LedgerReads
from subnetlab.validator.metrics import ValidatorMetrics

log = logging.getLogger(__name__)

Loader = Callable[[str], Awaitable[dict[str, Any] | None]]
"""An evidence document by digest (None: not in the store)."""


@dataclass
class CommitReveal:
    """Submits weights and keeps the reveals owed."""

    writer: ChainWriter
    reads: LedgerReads
    health: Health
    metrics: ValidatorMetrics
    pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def owes_reveals(self) -> bool:
        return bool(self.pending)

    async def submit(self, weights: dict[int, int], epoch: int, hyper: dict[str, Any]
                     ) -> dict[str, Any]:
        """Set (or commit) the weights; return where the chain has them (for the evidence)."""
        uids = sorted(weights)
        values = [weights[u] for u in uids]
        netuid = self.reads.netuid
        if not hyper.get("commit_reveal_weights_enabled"):
            receipt = await self.writer.submit("set_weights", {"netuid": netuid, "uids": uids,
                                                               "weights": values})
            return {"call": "set_weights", "block": receipt.get("block")}
        salt = [secrets.randbelow(2**16) for _ in range(8)]
        commit = weights_commit_hash(self.reads.hotkey, netuid, uids, values, salt, 0)
        receipt = await self.writer.submit("commit_weights",
                                           {"netuid": netuid, "commit_hash": commit})
        # The earliest epoch the chain can want the reveal in: a commit included after the
        # epoch turned wants it one later, and `reveal_too_early` keeps it pending till then.
        self.pending.append({
            "epoch": epoch + int(hyper.get("commit_reveal_period", 1)), "uids": uids,
            "weights": values, "salt": salt, "commit_hash": commit})
        return {"call": "commit_weights", "block": receipt.get("block"), "commit_hash": commit,
                "salt": salt, "version_key": 0}

    async def reveal_due(self, epoch: int) -> None:
        """Reveal every commit whose epoch has come; a reveal the chain finds too late is
        counted and logged as missed (never dropped silently), one too early kept."""
        for reveal in list(self.pending):
            if epoch < reveal["epoch"]:
                continue
            try:
                await self.writer.submit("reveal_weights", {
                    "netuid": self.reads.netuid, "uids": reveal["uids"],
                    "weights": reveal["weights"], "salt": reveal["salt"], "version_key": 0})
            except LedgerError as exc:
                if exc.code == "reveal_too_early":
                    continue
                self.pending.remove(reveal)
                outcome = "missed" if exc.code == "reveal_too_late" else exc.code
                if outcome == "missed":
                    self.health.missed_reveals += 1
                self.metrics.reveals.labels(outcome=outcome).inc()
                log.warning("reveal not made: outcome=%s commit=%s epoch=%d message=%s",
                            outcome, reveal["commit_hash"], epoch, exc.message)
                continue
            self.pending.remove(reveal)
            self.metrics.reveals.labels(outcome="ok").inc()

    async def resume(self, committed: list[dict[str, Any]], load: Loader) -> None:
        """Owed reveals back into `pending`, from the evidence that made them (`committed`:
        this validator's evidence digests on chain, oldest first)."""
        owed = {str(c["hash"]): c for c in await self.reads.commits()}
        if not owed:
            return
        oldest = min(int(c["epoch"]) for c in owed.values())
        found: list[dict[str, Any]] = []  # added at the end: a failed read adds nothing
        for entry in committed:
            if int(entry["epoch"]) < oldest - 1:  # an epoch may turn between read and commit
                continue
            document = await load(str(entry["digest"]))
            chain = (document or {}).get("chain") or {}
            commit = owed.pop(str(chain.get("commit_hash")), None)
            if document is None or chain.get("call") != "commit_weights" or commit is None:
                continue
            weights = {int(k): int(v) for k, v in document["weights"].items()}
            uids = sorted(weights)
            found.append({
                "epoch": int(commit["reveal_epoch"]), "uids": uids,
                "weights": [weights[u] for u in uids], "salt": list(chain["salt"]),
                "commit_hash": commit["hash"]})
        self.pending.extend(found)
        for commit in owed.values():
            log.warning("resume: commit %s (epoch %s) cannot be revealed: no evidence in the "
                        "store holds its salt", commit["hash"], commit["epoch"])
