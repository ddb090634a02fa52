"""Operator logs: kopf's routine retries are demoted, real errors are not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from subnetlab.k8s.logs import RoutineRetryFilter


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.fixture
def kopf_level() -> Iterator[logging.Logger]:
    logger = logging.getLogger("kopf")
    before = logger.level
    yield logger
    logger.setLevel(before)


def test_retries_are_dropped_when_kopf_is_quiet_and_demoted_when_verbose(
        kopf_level: logging.Logger) -> None:
    retry = "Handler 'neuron' failed temporarily: SubnetNotReady: no netuid yet"
    kopf_level.setLevel(logging.WARNING)
    assert not RoutineRetryFilter().filter(record("kopf.objects", logging.ERROR, retry))
    kopf_level.setLevel(logging.DEBUG)
    shown = record("kopf.objects", logging.ERROR, retry)
    assert RoutineRetryFilter().filter(shown) and shown.levelname == "INFO"


def test_other_errors_pass_unchanged(kopf_level: logging.Logger) -> None:
    kopf_level.setLevel(logging.WARNING)
    permanent = record("kopf.objects", logging.ERROR, "Handler 'neuron' failed permanently: x")
    ours = record("subnetlab.k8s", logging.ERROR, "failed temporarily, but not kopf's")
    for kept in (permanent, ours):
        assert RoutineRetryFilter().filter(kept) and kept.levelno == logging.ERROR
