"""The evidence queue: documents waiting to be stored in Redis and their digests committed.

A document that fails for a passing reason (Redis or the ledger down, the ledger not ready
or rate limiting) stays queued for the next round, up to MAX_PENDING_EVIDENCE (the oldest
go first, with a warning). What the document holds is built by epoch.WeightSetter.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import redis

from subnetlab.ledger.client import LedgerError
from subnetlab.neuron.chain_writer import ChainWriter
from subnetlab.validator.evidence import store_evidence
from subnetlab.validator.health import Health
from subnetlab.validator.ledger_reads import LedgerReads
from subnetlab.validator.stage import Stage, StageMarker

log = logging.getLogger(__name__)

TRANSIENT_REFUSALS = frozenset({"not_ready", "rate_limited", "stale_nonce", "future_nonce",
                                "insufficient_balance", "bad_response"})
"""Ledger refusals of `commit_evidence` that a later try can get past: the document stays
queued. Any other refusal would be refused again."""
MAX_PENDING_EVIDENCE = 64
"""Evidence documents kept for a retry while Redis or the ledger is down (oldest go)."""


@dataclass
class EvidenceQueue:
    """Queued evidence documents, stored and committed oldest first."""

    store: redis.Redis
    writer: ChainWriter
    reads: LedgerReads
    health: Health
    stage: StageMarker
    pending: list[dict[str, Any]] = field(default_factory=list)

    def put(self, document: dict[str, Any]) -> None:
        self.pending.append(document)
        if len(self.pending) > MAX_PENDING_EVIDENCE:
            dropped = self.pending.pop(0)
            log.warning("evidence dropped: epoch=%d (queue full while Redis or the ledger "
                        "is down)", dropped["epoch"])

    async def flush(self) -> None:
        """Store each queued document in Redis and commit its digest, oldest first.

        What fails for a passing reason (Redis or the ledger down, the ledger not ready or
        rate limiting) stays queued for the next round. A refusal that retrying cannot
        change (the validator deregistered, say) drops the document with a warning. A
        `duplicate_evidence` refusal is success only when the digest on chain is this one
        (an earlier commit whose answer was lost); another digest there means these weights
        have no evidence on chain, which is logged as a warning, never passed over.
        """
        while self.pending:
            document = self.pending[0]
            self.stage.now = Stage.STORE_EVIDENCE
            digest = await asyncio.to_thread(store_evidence, self.store, document)
            self.health.redis = "ok"
            self.stage.now = Stage.COMMIT_EVIDENCE
            try:
                await self.writer.submit("commit_evidence", {
                    "netuid": self.reads.netuid, "epoch": document["epoch"],
                    "digest": digest})
            except LedgerError as exc:
                if exc.code in TRANSIENT_REFUSALS:
                    log.info("evidence commit deferred: epoch=%d code=%s", document["epoch"],
                             exc.code)
                    return
                if exc.code == "duplicate_evidence":
                    await self._check_committed(int(document["epoch"]), digest)
                else:
                    log.warning("evidence dropped, refused: epoch=%d digest=%s code=%s "
                                "message=%s", document["epoch"], digest, exc.code, exc.message)
            self.pending.pop(0)

    async def _check_committed(self, epoch: int, digest: str) -> None:
        on_chain = [str(entry["digest"]) for entry in await self.reads.evidence(epoch)]
        if digest not in on_chain:
            log.warning("evidence not committed: epoch=%d digest=%s, the chain already holds "
                        "%s for this epoch; the weights it describes have no evidence on "
                        "chain", epoch, digest, ",".join(on_chain) or "another digest")
