"""The drain bound (protocol/drain.py) and what is sized from it: the supervisor's wait
before SIGKILL and the pods' terminationGracePeriodSeconds. The servers themselves drain
in tests/integration/test_server_drain.py, as real processes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from subnetlab.k8s.resources import TERMINATION_GRACE_S
from subnetlab.local.processes import stop_timeout
from subnetlab.protocol.drain import (
    DEFAULT_DRAIN_SECONDS,
    MAX_DRAIN_SECONDS,
    STOP_GRACE_S,
    DrainingServer,
    check_drain_seconds,
    drain_seconds_from_env,
    stop_bound,
)

LEDGER_TEMPLATE = Path(__file__).parents[2] / "helm" / "subnetlab" / "templates" / "ledger.yaml"


@pytest.mark.parametrize("seconds", [0.0, 0.5, DEFAULT_DRAIN_SECONDS, MAX_DRAIN_SECONDS])
def test_drain_seconds_in_range_are_taken(seconds: float) -> None:
    assert check_drain_seconds(seconds) == seconds


@pytest.mark.parametrize("seconds", [-0.1, MAX_DRAIN_SECONDS + 0.1, math.nan, math.inf])
def test_drain_seconds_out_of_range_name_the_flag_and_the_range(seconds: float) -> None:
    with pytest.raises(ValueError, match=r"^--drain-seconds .*: must be a number of seconds "
                                         r"in \[0, 300\]$"):
        check_drain_seconds(seconds)
    with pytest.raises(ValueError, match="drain_seconds"):
        DrainingServer(object(), seconds)


def test_the_server_drains_for_the_time_it_is_given() -> None:
    assert DrainingServer(object(), 2.5).config.timeout_graceful_shutdown == 2.5


@pytest.mark.parametrize(("env", "expected"), [
    ({}, DEFAULT_DRAIN_SECONDS), ({"SUBNETLAB_DRAIN_SECONDS": " "}, DEFAULT_DRAIN_SECONDS),
    ({"SUBNETLAB_DRAIN_SECONDS": "12"}, 12.0),
    ({"SUBNETLAB_DRAIN_SECONDS": "soon"}, MAX_DRAIN_SECONDS),  # refused: never wait less
    ({"SUBNETLAB_DRAIN_SECONDS": "-3"}, MAX_DRAIN_SECONDS),
])
def test_the_drain_a_child_inherits_from_its_environment(env: dict[str, str],
                                                         expected: float) -> None:
    assert drain_seconds_from_env(env) == expected


def test_a_supervisor_waits_longer_than_a_server_may_take_to_stop() -> None:
    assert stop_timeout({}) > stop_bound(DEFAULT_DRAIN_SECONDS)
    assert stop_timeout({"SUBNETLAB_DRAIN_SECONDS": "60"}) > 60 + STOP_GRACE_S
    assert stop_timeout({}, ["miner", "serve", "--drain-seconds", "100"]) > 100 + STOP_GRACE_S
    assert stop_timeout({}, ["--drain-seconds", "nan"]) > MAX_DRAIN_SECONDS


def test_pods_are_killed_only_after_their_servers_could_have_stopped() -> None:
    assert stop_bound(DEFAULT_DRAIN_SECONDS) < TERMINATION_GRACE_S
    found = re.search(r"terminationGracePeriodSeconds: (\d+)", LEDGER_TEMPLATE.read_text())
    assert found is not None, "the ledger's Deployment sets its grace period"
    assert int(found.group(1)) > stop_bound(DEFAULT_DRAIN_SECONDS)
