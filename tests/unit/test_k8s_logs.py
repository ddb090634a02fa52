"""Operator logs: kopf's routine retries are demoted, real errors are not; each deletion
and the shutdown leave one structured line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import pytest
from kopf._core.actions.loggers import ObjectJsonFormatter

from subnetlab.k8s.config import OperatorConfig
from subnetlab.k8s.context import Operator
from subnetlab.k8s.handlers import cleanup
from subnetlab.k8s.logs import RoutineRetryFilter
from subnetlab.k8s.metrics import OperatorMetrics
from subnetlab.k8s.neurons import delete_neuron
from subnetlab.k8s.subnets import delete_subnet
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerError


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


# ---- one structured line per deletion, and one at shutdown ------------------------------


JsonLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    """What `subnetlab.k8s` has logged so far, formatted by kopf's JSON formatter (the one
    `subnetlab operator run` installs), each line parsed back."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ObjectJsonFormatter())
    logger = logging.getLogger("subnetlab.k8s")
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(before)


TOKEN = 10**9
OWNER = Keypair.dev("alice")
HOTKEY = Keypair.dev("log-test-hotkey").ss58_address


def neuron_body(status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
            "metadata": {"name": "miner-0", "namespace": "demo", "uid": "u-1",
                         "deletionTimestamp": "2030-01-01T00:00:00Z"},
            "spec": {"subnet": "demo", "role": "miner"}, "status": status}


SUBNET = {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Subnet",
          "metadata": {"name": "demo", "namespace": "demo", "uid": "u-0"},
          "spec": {"owner": {"devKey": "alice"}},
          "status": {"netuid": 3, "owner": OWNER.ss58_address}}


class FakeLedger:
    """Alice's stake on the hotkey; every submission included, deregister as told."""

    url = "http://ledger.lab.svc:9944"

    def __init__(self, staked: int, deregister_error: str | None = None) -> None:
        self.staked, self.deregister_error = staked, deregister_error
        self.calls: list[str] = []

    async def account(self, address: str) -> dict[str, Any]:
        return {"stake": [{"hotkey": HOTKEY, "amount": self.staked}] if self.staked else []}

    async def submit(self, signer: Keypair, call: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(call)
        if call == "remove_stake":
            self.staked = 0
        if call == "deregister" and self.deregister_error:
            raise LedgerError(self.deregister_error, "gone", status=400)
        return {"block": 1}

    async def aclose(self) -> None:
        self.calls.append("close")


class FakeKube:
    def __init__(self) -> None:
        self.closed = False

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return SUBNET if kind == "Subnet" else None

    async def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return []

    async def aclose(self) -> None:
        self.closed = True


def operator(ledger: FakeLedger, kube: FakeKube | None = None) -> Operator:
    return Operator(OperatorConfig(), ledger, kube or FakeKube(),  # type: ignore[arg-type]
                    OperatorMetrics(), lambda *_: None)


def test_a_deleted_neuron_says_what_it_released(json_lines: JsonLines) -> None:
    ledger = FakeLedger(staked=12_500_000_000)
    body = neuron_body({"hotkey": HOTKEY, "netuid": 3, "uid": 4})
    asyncio.run(delete_neuron(operator(ledger), body, retry=0, runtime=0.0))
    assert ledger.calls == ["remove_stake", "deregister"]
    (line,) = json_lines()
    assert line["message"] == (f"Neuron demo/miner-0 deleted: hotkey {HOTKEY} (uid 4) left "
                               "netuid 3; 12.5 tokens of stake returned to the owner")
    assert line["severity"] == "info" and line["event"] == "deleted"
    assert line["object"] == {"apiVersion": "subnetlab.io/v1alpha1", "kind": "Neuron",
                              "namespace": "demo", "name": "miner-0", "uid": "u-1"}
    assert line["released"] == {"outcome": "released", "netuid": 3, "hotkeys": [
        {"hotkey": HOTKEY, "uid": 4, "unstaked_rao": 12_500_000_000, "deregistered": True}]}


def test_a_neuron_already_gone_from_the_ledger_says_so(json_lines: JsonLines) -> None:
    ledger = FakeLedger(staked=0, deregister_error="not_registered")
    body = neuron_body({"hotkey": HOTKEY, "netuid": 3, "uid": 4})
    asyncio.run(delete_neuron(operator(ledger), body, retry=0, runtime=0.0))
    (line,) = json_lines()
    assert line["message"].endswith(f"hotkey {HOTKEY} held no uid on netuid 3 any more; 0 "
                                    "tokens of stake returned to the owner")
    assert line["released"]["hotkeys"][0]["deregistered"] is False


def test_a_neuron_that_gives_up_warns_what_stays_on_the_ledger(
        json_lines: JsonLines) -> None:
    ledger = FakeLedger(staked=TOKEN, deregister_error="invalid_param")  # refused for good
    body = neuron_body({"hotkey": HOTKEY, "netuid": 3, "uid": 4})
    asyncio.run(delete_neuron(operator(ledger), body, retry=3, runtime=301.0))
    (line,) = json_lines()
    assert line["severity"] == "warn"
    assert line["message"].startswith("Neuron demo/miner-0 deleted: gave up after 301s (")
    assert line["message"].endswith(f"uid 4 and the stake of {HOTKEY} stay on netuid 3")
    assert line["released"]["outcome"] == "gave_up"


def test_a_never_registered_neuron_and_a_subnet_log_their_deletion(
        json_lines: JsonLines) -> None:
    asyncio.run(delete_neuron(operator(FakeLedger(0)), neuron_body({}), retry=0, runtime=0.0))
    asyncio.run(delete_subnet(operator(FakeLedger(0)), SUBNET))
    never, subnet = json_lines()
    assert never["message"] == ("Neuron demo/miner-0 deleted: it was never registered: "
                                "nothing to release on the ledger")
    assert never["released"] == {"outcome": "nothing"}
    assert subnet["message"].startswith("Subnet demo/demo deleted: netuid 3 released: it "
                                        f"stays on the ledger with its owner {OWNER.ss58_address}")
    assert subnet["released"] == {"outcome": "released", "netuid": 3,
                                  "owner": OWNER.ss58_address}
    assert subnet["object"]["kind"] == "Subnet" and subnet["event"] == "deleted"


def test_the_operator_logs_its_shutdown(json_lines: JsonLines) -> None:
    ledger, kube = FakeLedger(0), FakeKube()
    op = operator(ledger, kube)
    op.lock("u-1")
    op.lock("u-2")
    asyncio.run(cleanup(memo=kopf.Memo(op=op)))
    assert ledger.calls == ["close"] and kube.closed
    (line,) = json_lines()
    assert line["message"].startswith("operator stopped: 2 Subnet/Neuron objects were being "
                                      "reconciled")
    assert (line["event"], line["objects"], line["ledger"]) == ("stopped", 2, FakeLedger.url)
    asyncio.run(cleanup(memo=kopf.Memo()))  # stopped before it started: nothing to say
    assert len(json_lines()) == 1
