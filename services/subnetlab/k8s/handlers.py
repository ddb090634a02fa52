"""kopf wiring: which handler runs on which event, and how outcomes become kopf's errors.

Importing this module registers the handlers, so both `kopf run -m subnetlab.k8s.handlers`
and `subnetlab operator run` work. Settings come from `OperatorConfig` (flags, or the
`SUBNETLAB_OPERATOR_*` environment); the sync timer's interval is read at import time,
because kopf fixes it when the handler is registered.

Per object: create, update (of `spec`) and resume (operator start) run the full
reconcile; a timer repeats it every `sync_interval_s` to keep status in step with the
metagraph and to notice the ledger going away and coming back; a finalizer runs on
deletion. kopf keeps its own bookkeeping in `subnetlab.io/*` annotations, not in status,
whose schema is ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any

import kopf

from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.context import Fail, Operator, Retry, meta
from subnetlab.k8s.crds import GROUP, VERSION
from subnetlab.k8s.kube import Kube, KubeError
from subnetlab.k8s.ledger import Ledger
from subnetlab.k8s.logs import log_stopped, quiet_libraries
from subnetlab.k8s.metrics import OperatorMetrics
from subnetlab.k8s.neurons import delete_neuron, reconcile_neuron
from subnetlab.k8s.plan import BURN_PATH, STAKE_PATH, touches
from subnetlab.k8s.status import FAILED_REASONS, condition
from subnetlab.k8s.subnets import delete_subnet, reconcile_subnet

log = logging.getLogger("subnetlab.k8s")

SYNC_INTERVAL_S = OperatorConfig.from_env().sync_interval_s
FINALIZER = f"{GROUP}/finalizer"
TIMER_EXIT_POLL_S = 1.0
"""How often kopf checks, during a deletion, whether a sync timer's pass has ended."""
SUBNETS = (GROUP, VERSION, "subnets")
NEURONS = (GROUP, VERSION, "neurons")


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A Kubernetes Event about `body` (kopf posts it in the background)."""
    kopf.event(dict(body), type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator (no I/O: the startup handler's first step)."""
    settings.persistence.finalizer = FINALIZER
    # kopf's own bookkeeping in annotations: status is ours, with a schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Events are ours (one per status-changing step); kopf's log lines stay logs.
    settings.posting.level = logging.CRITICAL
    settings.peering.standalone = True
    # No watching of CRDs and namespaces: the CRDs are installed before the operator
    # starts (the chart does so), and least privilege needs no cluster-wide reads of them.
    settings.scanning.disabled = True
    # A sync timer caught mid-pass by a deletion keeps the finalizer on until kopf sees it
    # exit, and kopf looks again only after this long. kopf's default, 60 s, made a
    # `kubectl delete --wait` hang a minute whenever a timer tick and the deletion met,
    # and the finalizer then ran a second time (kopf had dropped its progress meanwhile).
    settings.background.cancellation_polling = TIMER_EXIT_POLL_S


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Settings, clients and the metrics endpoint, once per operator process."""
    config = memo.get("config") or OperatorConfig.from_env()
    configure_kopf(settings)
    quiet_libraries(logging.getLogger("subnetlab").isEnabledFor(logging.DEBUG))
    metrics = OperatorMetrics()
    metrics.serve(config.metrics_port)
    memo["op"] = Operator(config, Ledger(config.ledger_url), Kube.from_environment(), metrics,
                          post_event)
    log.info("operator started: ledger %s, image %s", config.ledger_url, config.image)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """On SIGTERM/SIGINT: close the clients and say so in one last line (a SIGKILLed
    operator writes none, which is how the two are told apart in the log)."""
    op: Operator | None = memo.get("op")
    if op is not None:
        await op.ledger.aclose()
        await op.kube.aclose()
        log_stopped(op.ledger.url, op.tracked)


@kopf.on.probe(id="ledger")
def ledger_probe(memo: kopf.Memo, **_: Any) -> str:
    """Shown by the liveness endpoint; never fails it (a down ledger is not our crash)."""
    op: Operator | None = memo.get("op")
    return "unknown" if op is None else op.ledger.url


async def _run(op: Operator, kind: str, step: Awaitable[None]) -> None:
    """Await one step; count it; turn Retry/Fail into kopf's temporary/permanent errors."""
    started = time.perf_counter()
    try:
        await step
    except Retry as retry:
        op.metrics.reconciles.labels(kind, "retry").inc()
        raise kopf.TemporaryError(f"{retry.reason}: {retry.message}", delay=retry.delay
                                  ) from None
    except Fail as failure:
        op.metrics.reconciles.labels(kind, "failed").inc()
        raise kopf.PermanentError(f"{failure.reason}: {failure.message}") from None
    finally:
        op.metrics.reconcile_seconds.labels(kind).observe(time.perf_counter() - started)
    op.metrics.reconciles.labels(kind, "ok").inc()


def _settled_failure(body: Mapping[str, Any]) -> bool:
    """Whether this generation already failed permanently (the timer leaves it alone
    instead of repeating the same Warning every interval)."""
    status = body.get("status") or {}
    ready = condition(status.get("conditions", []), "Ready") or {}
    return (ready.get("reason") in FAILED_REASONS
            and status.get("observedGeneration") == meta(body).generation)


def _idle(body: Mapping[str, Any]) -> bool:
    """Whether the timer leaves the object alone: it is being deleted (the finalizer's
    turn), or its generation has failed for good."""
    return bool(body["metadata"].get("deletionTimestamp")) or _settled_failure(body)


# ---- Subnet ----------------------------------------------------------------------------


@kopf.on.resume(*SUBNETS, id="subnet")
@kopf.on.create(*SUBNETS, id="subnet")
@kopf.on.update(*SUBNETS, id="subnet", field="spec")
async def subnet_changed(body: kopf.Body, diff: kopf.Diff, reason: str, retry: int,
                         memo: kopf.Memo, **_: Any) -> None:
    op: Operator = memo["op"]
    include_burn = reason == "update" and touches(diff, BURN_PATH)
    async with op.lock(meta(body).uid):
        await _run(op, "Subnet", reconcile_subnet(op, body, include_burn, retry))


@kopf.timer(*SUBNETS, id="subnet-sync", interval=SYNC_INTERVAL_S,
            initial_delay=SYNC_INTERVAL_S)
async def subnet_sync(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _sync(memo["op"], body, "Subnet", kwargs["stopped"])


@kopf.on.delete(*SUBNETS, id="subnet-release")
async def subnet_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    op: Operator = memo["op"]
    async with op.lock(meta(body).uid):
        await _run(op, "Subnet", delete_subnet(op, body))


# ---- Neuron ----------------------------------------------------------------------------


@kopf.on.resume(*NEURONS, id="neuron")
@kopf.on.create(*NEURONS, id="neuron")
@kopf.on.update(*NEURONS, id="neuron", field="spec")
async def neuron_changed(body: kopf.Body, diff: kopf.Diff, reason: str, retry: int,
                         memo: kopf.Memo, **_: Any) -> None:
    op: Operator = memo["op"]
    exact_stake = reason == "update" and touches(diff, STAKE_PATH)
    async with op.lock(meta(body).uid):
        await _run(op, "Neuron", reconcile_neuron(op, body, retry, exact_stake))


@kopf.timer(*NEURONS, id="neuron-sync", interval=SYNC_INTERVAL_S,
            initial_delay=SYNC_INTERVAL_S)
async def neuron_sync(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await _sync(memo["op"], body, "Neuron", kwargs["stopped"])


@kopf.on.delete(*NEURONS, id="neuron-release")
async def neuron_deleted(body: kopf.Body, retry: int, runtime: Any, memo: kopf.Memo,
                         **_: Any) -> None:
    op: Operator = memo["op"]
    async with op.lock(meta(body).uid):
        await _run(op, "Neuron", delete_neuron(op, body, retry, runtime.total_seconds()))


# ---- the timers ---------------------------------------------------------------------------


async def _sync(op: Operator, body: Mapping[str, Any], kind: str,
                stopped: kopf.DaemonStopped) -> None:
    """A periodic pass: status from the ledger, drift corrected. Its failures are already
    in status (the next tick is its retry), so they end here instead of in kopf's log.

    The object is read again once the lock is held: the timer's copy is from when it
    fired, and a change handler or the finalizer may have run meanwhile. Reconciling that
    old copy would undo them (register again what the finalizer just deregistered, or
    make the sybil hotkeys that a lowered `sybilHotkeys` just released). A timer that kopf
    stopped meanwhile (the object is being deleted: the lock was the finalizer's) ends
    without a pass, so the finalizer can come off at once.
    """
    if _idle(body) or stopped:
        return
    name, namespace, uid, _ = meta(body)
    async with op.lock(uid):
        if stopped:
            return
        try:
            fresh = await op.kube.get(kind, namespace, name)
        except KubeError as exc:
            log.debug("sync of %s %s: %s", kind, name, exc)
            return
        if fresh is None or fresh["metadata"]["uid"] != uid or _idle(fresh):
            return
        step = (reconcile_subnet(op, fresh, False, 0) if kind == "Subnet"
                else reconcile_neuron(op, fresh, 0, exact_stake=False))
        try:
            await _run(op, kind, step)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            log.debug("sync of %s %s: %s", kind, meta(body).name, exc)
