"""Drive a running ledger with signed extrinsics and measure throughput and inclusion time.

The driver is a separate process talking HTTP, as real clients do. Everything is signed and
every batch body is JSON-encoded before the clock starts (that is the client's cost, not the
ledger's: encoding 100 weight lists per batch in the timed loop would count the driver's own
work, slowed by its sender threads sharing one GIL, as inclusion time, and take CPU from the
ledger on a small machine), then sent at a fixed offered rate. Inclusion time is the block's
`persisted_at` (the moment the ledger had it stored in Redis: no receipt of it can be
reported before) minus the moment its batch was sent; both clocks are this machine's. The
block's own `timestamp` (its seal, before the Redis write) would understate it.

Workload: `set_weights` with 256 weights from V validator hotkeys and `transfer`s among
many funded accounts, interleaved.

The ledger's CPU time per extrinsic is read from its own /metrics before the first send and
once its queue has none of the load left: `process_cpu_seconds_total` (the standard
Prometheus process series, `/proc/self/stat` of the ledger process) plus its signature
worker's seconds. Unlike the rates it hardly depends on how busy the machine is, so it is
the figure to compare versions by.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from subnetlab.bench.errors import BenchError
from subnetlab.chain.extrinsic import Extrinsic
from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import METRICS_ROUTE, LedgerClient, LedgerError, encode_batch
from subnetlab.local.bootstrap import SetupClient

WEIGHTS_PER_SET = 256


@dataclass(frozen=True)
class EncodedBatch:
    """One batch request, encoded in advance: its body and its extrinsics' hashes."""

    body: bytes
    hashes: list[str]


def encode_batches(stream: list[Extrinsic], batch: int) -> list[EncodedBatch]:
    """`stream` cut into `POST /v1/extrinsics/batch` bodies of `batch` extrinsics each."""
    out: list[EncodedBatch] = []
    for offset in range(0, len(stream), batch):
        chunk = stream[offset : offset + batch]
        out.append(EncodedBatch(encode_batch(chunk), [e.hash for e in chunk]))
    return out


@dataclass(frozen=True)
class LedgerBenchResult:
    offered_rate: float
    submitted: int
    refused: int
    included: int
    failed: int
    extrinsics_per_second: float
    p50_inclusion_ms: float
    p99_inclusion_ms: float
    block_time_s: float
    set_weights: int
    transfers: int
    driver_cpu_share: float
    """The driver's CPU time while sending over the sending time (1.0 = one whole core):
    on a small machine the driver shares the cores with the ledger, so say what it took."""
    ledger_cpu_s: float | None = None
    """The ledger's CPU time (user + system: its process's `process_cpu_seconds_total` plus
    its signature worker's) from the first send until its queue held none of the load;
    None when its /metrics has no such series. The load's work and the idle blocks in
    that window, not the setup."""
    ledger_worker_cpu_s: float = 0.0
    """The signature worker's part of `ledger_cpu_s`."""
    query_ms: tuple[float, float] = (0.0, 0.0)
    """p50 and p99 of `GET /v1/chain` asked one after another on one kept-alive connection
    once the load is through: what a client waits for a query (44 ms whatever the route
    until the ledger's socket got TCP_NODELAY; neuron/listen.py `bind_tcp`)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "offered_rate": self.offered_rate,
            "submitted": self.submitted,
            "refused": self.refused,
            "included": self.included,
            "failed": self.failed,
            "extrinsics_per_second": round(self.extrinsics_per_second, 1),
            "p50_inclusion_ms": round(self.p50_inclusion_ms, 1),
            "p99_inclusion_ms": round(self.p99_inclusion_ms, 1),
            "p99_inclusion_blocks": round(self.p99_inclusion_ms / 1000 / self.block_time_s, 2),
            "block_time_s": self.block_time_s,
            "set_weights": self.set_weights,
            "transfers": self.transfers,
            "driver_cpu_share": round(self.driver_cpu_share, 2),
            "ledger_cpu_s": None if self.ledger_cpu_s is None else round(self.ledger_cpu_s, 2),
            "ledger_worker_cpu_s": round(self.ledger_worker_cpu_s, 2),
            "ledger_cpu_ms_per_extrinsic": self.ledger_cpu_ms_per_extrinsic,
            "query_p50_ms": round(self.query_ms[0], 2),
            "query_p99_ms": round(self.query_ms[1], 2),
        }

    @property
    def ledger_cpu_ms_per_extrinsic(self) -> float | None:
        """The ledger's CPU milliseconds per extrinsic offered (admitted or refused): the
        figure that depends least on how busy the machine was."""
        offered = self.submitted + self.refused
        if self.ledger_cpu_s is None or not offered:
            return None
        return round(round(self.ledger_cpu_s, 2) * 1000 / offered, 3)  # as the JSON says


_CPU_SERIES = "process_cpu_seconds_total "
_WORKER_CPU_SERIES = "subnetlab_signature_worker_cpu_seconds "


def ledger_cpu_seconds(ledger: LedgerClient) -> tuple[float, float] | None:
    """The ledger process's and its signature worker's CPU seconds so far, from its
    /metrics (None without the process series; a ledger without a worker has 0)."""
    main: float | None = None
    worker = 0.0
    for line in ledger.text(METRICS_ROUTE).splitlines():
        if line.startswith(_CPU_SERIES):
            main = float(line[len(_CPU_SERIES):])
        elif line.startswith(_WORKER_CPU_SERIES):
            worker = float(line[len(_WORKER_CPU_SERIES):])
    return None if main is None else (main, worker)


def wait_until_processed(chain: SetupClient, digests: list[str], timeout: float) -> None:
    """Return once none of `digests` is pending (each included, failed or unknown).

    The ledger applies its queue in arrival order, so once the last extrinsic each sender
    had admitted is out of the queue, the whole load is.
    """
    deadline = time.monotonic() + timeout
    for digest in digests:
        while time.monotonic() < deadline:
            try:
                status = chain.ledger.receipt(digest).get("status")
            except LedgerError as exc:
                if exc.status != 404:
                    raise
                status = "unknown"
            if status != "pending":
                break
            time.sleep(chain.block_time / 5)


def _send_paced(
    url: str, batches: list[EncodedBatch], rate: float, start: float
) -> tuple[dict[str, float], int]:
    """Send `batches` at `rate` extrinsics/s from `start`; return send times and refusals
    (the send times in the order the ledger admitted them).

    A batch is stamped just before its request goes out; a sender that falls behind sends
    the next batch at once (and stamps it then), so its lag is not counted as the ledger's.
    """
    sent_at: dict[str, float] = {}
    refused = 0
    offset = 0
    with LedgerClient(url, timeout=60) as ledger:
        for encoded in batches:
            pause = start + offset / rate - time.time()
            if pause > 0:
                time.sleep(pause)
            stamp = time.time()
            try:
                results = ledger.submit_encoded_batch(encoded.body)
            except LedgerError as exc:
                raise BenchError(f"batch refused: {exc.status} {str(exc)[:500]}") from None
            for digest, result in zip(encoded.hashes, results, strict=True):
                if "error" in result:
                    refused += 1
                else:
                    sent_at[digest] = stamp
            offset += len(encoded.hashes)
    return sent_at, refused


def run_ledger_bench(
    url: str,
    duration: float = 20.0,
    rate: float = 2500.0,
    validators: int = 8,
    accounts: int = 64,
    batch: int = 100,
    weights_share: float = 0.5,
    senders: int = 4,
    progress: Callable[[str, float], None] | None = None,
) -> LedgerBenchResult:
    """Set up a subnet, then offer `rate` extrinsics/s for `duration` seconds."""
    say = progress or (lambda _what, _fraction: None)
    chain = SetupClient(url)
    alice = Keypair.dev("alice")
    tag = f"{time.time_ns()}"  # fresh keys each run, so reruns on one chain do not clash
    validator_keys = [Keypair.dev(f"bench-{tag}-validator-{i}") for i in range(validators)]
    miner_keys = [Keypair.dev(f"bench-{tag}-miner-{i}") for i in range(WEIGHTS_PER_SET)]
    account_keys = [Keypair.dev(f"bench-{tag}-account-{i}") for i in range(accounts)]

    say("creating the subnet", 0.0)
    create = chain.sign(alice, "create_subnet", {"hyperparameters": {
        "max_allowed_uids": validators + WEIGHTS_PER_SET, "weights_rate_limit": 0,
        "max_registrations_per_block": 4096, "target_registrations_per_interval": 4096,
        "min_burn": 1, "burn": 1, "max_burn": TOKEN, "immunity_period": 65535,
    }})
    chain.run_setup([create], "create_subnet")
    netuid = max(s["netuid"] for s in chain.subnets())

    say("registering 256 miners and the validators", 0.1)
    chain.run_setup(
        [chain.sign(alice, "register", {"netuid": netuid, "hotkey": k.ss58_address})
         for k in validator_keys + miner_keys],
        "register",
    )
    say("funding accounts", 0.3)
    chain.run_setup(
        [chain.sign(alice, "transfer", {"dest": k.ss58_address, "amount": 1_000 * TOKEN})
         for k in account_keys + validator_keys],
        "fund",
    )

    total = int(duration * rate)
    say(f"signing {total} extrinsics", 0.4)
    miner_uids = list(range(validators, validators + WEIGHTS_PER_SET))
    load: list[Extrinsic] = []
    n_weights = 0
    for i in range(total):
        if (i * weights_share) % 1 + weights_share >= 1:  # spread the share evenly
            key = validator_keys[i % validators]
            values = [1 + (i + j) % 65535 for j in range(WEIGHTS_PER_SET)]
            load.append(chain.sign(key, "set_weights",
                                   {"netuid": netuid, "uids": miner_uids, "weights": values}))
            n_weights += 1
        else:
            src = account_keys[i % accounts]
            dest = account_keys[(i * 7 + 1) % accounts]
            load.append(chain.sign(src, "transfer", {"dest": dest.ss58_address, "amount": 1}))

    say("encoding batches", 0.55)
    # Several senders, so that requests overlap as independent clients' would; each sender
    # owns whole accounts, which keeps every account's nonces in order.
    streams: list[list[Extrinsic]] = [[] for _ in range(senders)]
    owner = {k.ss58_address: i % senders for i, k in enumerate(validator_keys + account_keys)}
    for ext in load:
        streams[owner[ext.signer]].append(ext)
    encoded = [encode_batches(stream, batch) for stream in streams]

    say("sending", 0.6)
    first_block = chain.latest_block() + 1
    ledger_cpu_start = ledger_cpu_seconds(chain.ledger)
    start = time.time()
    cpu_start = time.process_time()
    # Sender i starts i batches' worth of time late: together they offer one batch every
    # batch/rate seconds, as independent clients would, not all senders' batches at once.
    phases = [start + i * batch / rate for i in range(senders)]
    with ThreadPoolExecutor(senders) as pool:
        outcomes = list(pool.map(
            lambda batches, phase: _send_paced(url, batches, rate / senders, phase),
            encoded, phases,
        ))
    driver_cpu_share = (time.process_time() - cpu_start) / max(time.time() - start, 1e-9)
    sent_at = {h: t for stamps, _ in outcomes for h, t in stamps.items()}
    refused = sum(r for _, r in outcomes)
    wait_until_processed(chain, [list(stamps)[-1] for stamps, _ in outcomes if stamps],
                         60 + duration)
    ledger_cpu_end = ledger_cpu_seconds(chain.ledger)
    ledger_cpu, worker_cpu = None, 0.0
    if ledger_cpu_start is not None and ledger_cpu_end is not None:
        worker_cpu = ledger_cpu_end[1] - ledger_cpu_start[1]
        ledger_cpu = ledger_cpu_end[0] - ledger_cpu_start[0] + worker_cpu

    say("waiting for inclusion", 0.9)
    included_at: dict[str, float] = {}
    failed = 0
    scanned = first_block
    deadline = time.monotonic() + 60 + duration
    while len(included_at) + failed < len(sent_at) and time.monotonic() < deadline:
        latest = chain.latest_block()
        for number in range(scanned, latest + 1):
            block = chain.ledger.block(number)
            stored_at = block.get("persisted_at")
            for receipt in block["receipts"]:
                if receipt["hash"] in sent_at:
                    if stored_at is None:
                        raise BenchError(f"block {number} has no persisted_at: did the "
                                         "ledger restart during the bench?")
                    if receipt["ok"]:
                        included_at[receipt["hash"]] = float(stored_at)
                    else:
                        failed += 1
        scanned = latest + 1
        time.sleep(chain.block_time)

    latencies = sorted((included_at[h] - sent_at[h]) * 1000.0 for h in included_at)
    if not latencies:
        raise BenchError("no extrinsic was included")
    say("timing queries", 0.95)
    query_ms = time_queries(chain.ledger)
    last_inclusion = max(included_at.values())
    return LedgerBenchResult(
        offered_rate=rate,
        submitted=len(sent_at),
        refused=refused,
        included=len(included_at),
        failed=failed,
        extrinsics_per_second=len(included_at) / (last_inclusion - start),
        p50_inclusion_ms=statistics.median(latencies),
        p99_inclusion_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        block_time_s=chain.block_time,
        set_weights=n_weights,
        transfers=total - n_weights,
        driver_cpu_share=driver_cpu_share,
        ledger_cpu_s=ledger_cpu,
        ledger_worker_cpu_s=worker_cpu,
        query_ms=query_ms,
    )


QUERIES = 200


def time_queries(ledger: LedgerClient, count: int = QUERIES) -> tuple[float, float]:
    """p50 and p99 milliseconds of `count` queries in a row on the client's connection."""
    ledger.chain()  # the connection is open before the first timed query
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        ledger.chain()
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    return statistics.median(times), times[min(count - 1, int(0.99 * count))]
