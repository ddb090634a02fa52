"""The kopf wiring's own decisions, without a cluster: kopf's settings, and what a sync
timer does once kopf has stopped it."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from kopf._core.intents.stoppers import DaemonStopper  # kopf exports only the waiter's type

from subnetlab.k8s.handlers import FINALIZER, TIMER_EXIT_POLL_S, _sync, configure_kopf


def test_kopf_rechecks_a_stopping_timer_every_second_not_every_minute() -> None:
    settings = kopf.OperatorSettings()
    assert settings.background.cancellation_polling == 60  # kopf's default: the bug
    configure_kopf(settings)
    assert settings.background.cancellation_polling == TIMER_EXIT_POLL_S <= 1.0
    assert settings.persistence.finalizer == FINALIZER
    assert settings.scanning.disabled and settings.peering.standalone


class _Untouchable:
    """An operator whose every attribute fails the test: a stopped timer uses none."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a stopped sync timer used op.{name}")


def test_a_stopped_sync_timer_ends_without_a_pass() -> None:
    body = {"metadata": {"name": "n", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {}, "status": {}}

    async def tick_after_stop() -> None:  # kopf's flags live on a running loop
        stopper = DaemonStopper()
        stopper.set(reason=kopf.DaemonStoppingReason.RESOURCE_DELETED)
        await _sync(_Untouchable(), body, "Neuron",  # type: ignore[arg-type]
                    stopper.async_waiter)

    asyncio.run(tick_after_stop())
