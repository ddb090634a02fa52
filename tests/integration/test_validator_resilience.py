"""A validator outlives its ledger: real processes, a real ledger killed and restarted.

Startup refuses what cannot work with one line naming the flag (an unknown subnet, an
unreachable ledger after a bounded wait, an unreachable Redis, bad options). Once running,
a SIGKILLed ledger makes the validators report `degraded` and log one-line failures; when
the ledger is back (same port, same Redis, the chain replayed), they set weights and
commit evidence again, and the audit of that evidence matches the chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from subnetlab.chain.units import TOKEN
from subnetlab.chain.weights import weights_commit_hash
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child, Supervisor
from tests.integration.conftest import (
    LedgerProcess,
    RedisServer,
    free_port,
    miner_child,
    validator_child,
    wait_until,
)

HYPER = {"tempo": 10, "weights_rate_limit": 0, "max_registrations_per_block": 64,
         "target_registrations_per_interval": 64, "immunity_period": 1000}
VALIDATORS = ("rs-v0", "rs-v1")


@dataclass
class Bed:
    redis: RedisServer
    ledger: LedgerProcess
    netuid: int
    validators: dict[str, Child]
    home: Path


@pytest.fixture(scope="module")
def testbed(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer,
    module_ledger: LedgerProcess,
) -> Iterator[Bed]:
    tmp = tmp_path_factory.mktemp("resilience")
    ledger, redis = module_ledger, module_redis
    supervisor = Supervisor()
    try:
        netuid = bootstrap_subnet(
            ledger.url, Keypair.dev("alice"), HYPER,
            miners=[Keypair.dev(n) for n in ("rs-m0", "rs-m1")],
            validators=[(Keypair.dev(n), 1_000 * TOKEN) for n in VALIDATORS])
        logs = tmp / "logs"
        supervisor.start_all([miner_child(n, netuid, ledger.url, logs)
                              for n in ("rs-m0", "rs-m1")], timeout=90)
        # The validators' own log level: the test reads the failures they log.
        validators = {name: validator_child(name, netuid, ledger.url, redis.url, logs,
                                            log_level=None)
                      for name in VALIDATORS}
        supervisor.start_all(list(validators.values()), timeout=90)
        yield Bed(redis, ledger, netuid, validators, tmp / "home")
    finally:
        supervisor.stop_all()


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUBNETLAB_HOME": str(home), "SUBNETLAB_API_KEYS": "k"}
    return subprocess.run([sys.executable, "-m", "subnetlab", "validator", "run",
                           "--dev-key", "rs-v0", "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=90, env=env, check=False)


def test_startup_refuses_what_cannot_work_with_one_line_naming_the_flag(
    testbed: Bed,
) -> None:
    ledger, redis = testbed.ledger.url, testbed.redis.url
    nowhere = f"http://127.0.0.1:{free_port()}"
    cases = {
        "--netuid 77: no such subnet": ["--netuid", "77", "--ledger", ledger,
                                        "--redis-url", redis],
        f"--ledger {nowhere}: unreachable after 1 s": [
            "--netuid", str(testbed.netuid), "--ledger", nowhere, "--ledger-wait", "1",
            "--redis-url", redis],
        "--redis-url redis://127.0.0.1:": [
            "--netuid", str(testbed.netuid), "--ledger", ledger,
            "--redis-url", f"redis://127.0.0.1:{free_port()}/0"],
        "--interval 0.01: must be at least": ["--interval", "0.01", "--ledger", ledger],
        "--tasks 'sorting=-2'": ["--tasks", "sorting=-2", "--ledger", ledger],
        "--tasks 'poetry=1'": ["--tasks", "poetry=1", "--ledger", ledger],
        "'--log-level'": ["--log-level", "loud"],
        "'--behaviour'": ["--behaviour", "saint"],
        "--reference-url apply only to": ["--reference-url", "http://127.0.0.1:1"],
    }
    for expected, args in cases.items():
        proc = _run(testbed.home, *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0, (expected, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:"), (expected, proc.stderr)
        assert expected in lines[0], (expected, lines[0])
        assert "unreachable" not in expected or "unreachable" in lines[0]


def _health(child: Child) -> dict[str, Any]:
    assert child.health_url is not None
    body: dict[str, Any] = httpx.get(child.health_url, timeout=5).json()
    return body


def _wait_status(child: Child, status: str) -> None:
    wait_until(lambda: _health(child)["status"] == status, 60,
               f"{child.name} to report {status}")


def _rows(ledger: str, netuid: int) -> dict[str, int]:
    with LedgerClient(ledger) as client:
        return {r["hotkey"]: int(r["last_update"]) for r in client.weights(netuid)["rows"]}


def _evidence_epochs(ledger: str, netuid: int, hotkey: str) -> list[int]:
    with LedgerClient(ledger) as client:
        return sorted(int(d["epoch"]) for d in client.evidence(netuid, hotkey=hotkey))


def _audit(bed: Bed, hotkey: str, epoch: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "subnetlab", "audit", str(bed.netuid), "--validator", hotkey,
         "--epoch", str(epoch), "--ledger", bed.ledger.url, "--redis-url", bed.redis.url,
         "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_validators_set_weights_again_after_the_ledger_is_killed_and_restarted(
    testbed: Bed,
) -> None:
    url, netuid = testbed.ledger.url, testbed.netuid
    hotkeys = {n: Keypair.dev(n).ss58_address for n in VALIDATORS}
    wait_until(lambda: all(_evidence_epochs(url, netuid, hk) for hk in hotkeys.values()), 120,
               "both validators' first evidence")
    last_epoch = {n: _evidence_epochs(url, netuid, hk)[-1] for n, hk in hotkeys.items()}
    with LedgerClient(url) as client:
        killed_at = int(client.latest_block()["number"])

    testbed.ledger.kill(signal.SIGKILL)
    for child in testbed.validators.values():
        _wait_status(child, "degraded")
        assert child.alive()
    testbed.ledger.start(timeout=60)

    def weights_set_again() -> bool:
        rows = _rows(url, netuid)
        return all(rows.get(hk, -1) > killed_at for hk in hotkeys.values())

    wait_until(weights_set_again, 120, "weights set again after the restart")
    wait_until(lambda: all(_evidence_epochs(url, netuid, hk)[-1] > last_epoch[n]
                           for n, hk in hotkeys.items()), 120, "evidence committed again")
    for name, child in testbed.validators.items():
        assert child.alive(), child.tail()
        _wait_status(child, "ok")
        failures = [json.loads(line) for line in child.log_path.read_text().splitlines()
                    if "round failed" in line]
        assert any("dependency=ledger" in f["msg"] for f in failures), failures[:3]
        assert all(f["level"] == "warning" and "stage=" in f["msg"] and "retry_in_s=" in f["msg"]
                   for f in failures), failures[:3]
        epoch = _evidence_epochs(url, netuid, hotkeys[name])[-1]
        assert _audit(testbed, hotkeys[name], epoch)["chain_ok"] is True


def _kill_and_restart(child: Child) -> int:
    """SIGKILL the child (nothing in memory survives), start it again, wait till healthy;
    returns how many lines its log had before the restart."""
    assert child.process is not None
    os.killpg(os.getpgid(child.process.pid), signal.SIGKILL)
    child.process.wait(10)
    logged = len(child.log_path.read_text().splitlines())
    child.start()
    child.wait_healthy(90)
    return logged


def test_a_killed_validator_resumes_from_its_evidence(testbed: Bed) -> None:
    """SIGKILL loses everything in memory; the restarted validator must neither set weights
    a second time in an epoch that already has its evidence (that setting would have none
    on chain) nor start its moving scores from nothing while its evidence continues."""
    url, netuid, name = testbed.ledger.url, testbed.netuid, VALIDATORS[1]
    child, hotkey = testbed.validators[name], Keypair.dev(name).ss58_address
    wait_until(lambda: bool(_evidence_epochs(url, netuid, hotkey)), 120, "first evidence")
    before = _evidence_epochs(url, netuid, hotkey)[-1]
    logged = _kill_and_restart(child)
    wait_until(lambda: _evidence_epochs(url, netuid, hotkey)[-1] > before, 120,
               "evidence after the restart")
    after = next(e for e in _evidence_epochs(url, netuid, hotkey) if e > before)
    result = _audit(testbed, hotkey, after)
    assert result["ok"], result["reasons"]
    assert not any("afresh" in note for note in result["notes"]), result["notes"]
    since_restart = child.log_path.read_text().splitlines()[logged:]
    assert not any("evidence not committed" in line for line in since_restart), since_restart


# Commit-reveal: 5 s epochs and a reveal three epochs after the commit, so a validator
# killed just after committing is back (a few seconds) well inside its reveal window.
CR_HYPER = {**HYPER, "tempo": 20, "commit_reveal_weights_enabled": True,
            "commit_reveal_period": 3}


@pytest.fixture(scope="module")
def commit_reveal_validator(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer,
    module_ledger: LedgerProcess,
) -> Iterator[tuple[int, Child]]:
    logs = tmp_path_factory.mktemp("resilience-cr") / "logs"
    supervisor = Supervisor()
    try:
        netuid = bootstrap_subnet(module_ledger.url, Keypair.dev("alice"), CR_HYPER,
                                  miners=[Keypair.dev("rs-cr-m0")],
                                  validators=[(Keypair.dev("rs-cr-v0"), 1_000 * TOKEN)])
        supervisor.start_all([miner_child("rs-cr-m0", netuid, module_ledger.url, logs)],
                             timeout=90)
        validator = validator_child("rs-cr-v0", netuid, module_ledger.url, module_redis.url,
                                    logs)
        supervisor.start_all([validator], timeout=90)
        yield netuid, validator
    finally:
        supervisor.stop_all()


def _revealed_hashes(client: LedgerClient, netuid: int, hotkey: str, since: int) -> set[str]:
    """The commit hashes the included `reveal_weights` of `hotkey` since block `since` open."""
    found = set()
    for number in range(since, int(client.latest_block()["number"]) + 1):
        block = client.block(number)
        receipts = {int(r.get("index", i)): r for i, r in enumerate(block.get("receipts", []))}
        for index, ext in enumerate(block.get("extrinsics", [])):
            if ext.get("signer") != hotkey or ext.get("call") != "reveal_weights" \
                    or not receipts.get(index, {}).get("ok", True):
                continue
            params = ext["params"]
            found.add(weights_commit_hash(hotkey, netuid, params["uids"], params["weights"],
                                          params["salt"], int(params.get("version_key", 0))))
    return found


def test_a_validator_killed_after_committing_still_reveals(
    commit_reveal_validator: tuple[int, Child], module_ledger: LedgerProcess,
) -> None:
    """The reveals a validator owes live only in its memory and in its evidence (the salt);
    killed between commit and reveal, it must find them again and reveal in their epoch."""
    netuid, child = commit_reveal_validator
    hotkey = Keypair.dev("rs-cr-v0").ss58_address
    with LedgerClient(module_ledger.url) as client:

        def committed_with_evidence() -> bool:
            owed = client.commits(netuid, hotkey=hotkey)
            epochs = {int(d["epoch"]) for d in client.evidence(netuid, hotkey=hotkey)}
            return bool(owed) and max(int(c["epoch"]) for c in owed) in epochs

        wait_until(committed_with_evidence, 120, "a commit and its evidence")
        owed = client.commits(netuid, hotkey=hotkey)
        _kill_and_restart(child)
        due = max(int(c["reveal_epoch"]) for c in owed)
        wait_until(lambda: int(client.subnet(netuid)["epochs_run"]) > due, 120,
                   "the owed reveal epochs to pass")
        revealed = _revealed_hashes(client, netuid, hotkey, min(int(c["block"]) for c in owed))
    assert {c["hash"] for c in owed} <= revealed, (owed, revealed, child.tail())
