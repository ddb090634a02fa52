"""Weight copying against commit-reveal, with real processes on a real ledger.

Two subnets on one ledger, alike but for commit-reveal (off, on): each has two honest sim
miners and a lazy one, two honest validators and a `--behaviour weight-copier` validator
(it sets the chain's last consensus as its weights and does no work), all with the same
stake. Both run the same number of epochs from the same start; what each validator's
stake grew by is its dividends. The copier's yield relative to the honest validators is
lower with commit-reveal on: the consensus it copies only exists once honest weights are
revealed, and its own copy must be committed and revealed too, so it starts earning later
(with miners of constant quality that head start is what commit-reveal takes from it;
tests/unit/test_copier.py shows the steady-state effect when quality drifts).

The weights rate limit (15 blocks) is longer than an epoch (10 blocks), so every reveal
is due before the next commit would be allowed: the loop must reveal independently of the
rate limit, and every reveal is checked to have been made (none missed) and audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import LedgerClient
from subnetlab.local.bootstrap import bootstrap_subnet
from subnetlab.local.processes import Child, Supervisor
from tests.integration.conftest import (
    LedgerProcess,
    RedisServer,
    miner_child,
    validator_child,
    wait_until,
)

EPOCHS = 10
STAKE = 1_000 * TOKEN


def _hyper(commit_reveal: bool) -> dict[str, object]:
    return {"tempo": 10, "weights_rate_limit": 15, "max_registrations_per_block": 64,
            "target_registrations_per_interval": 64, "immunity_period": 1000,
            "commit_reveal_weights_enabled": commit_reveal, "commit_reveal_period": 1}


@dataclass
class Arm:
    """One subnet of the experiment."""

    commit_reveal: bool
    netuid: int
    prefix: str
    validators: dict[str, Child] = field(default_factory=dict)
    stake_before: dict[str, int] = field(default_factory=dict)

    def name(self, role: str) -> str:
        return f"{self.prefix}-{role}"


@dataclass
class Experiment:
    redis: RedisServer
    ledger: LedgerProcess
    arms: list[Arm]


def _stakes(ledger: str, arm: Arm) -> dict[str, int]:
    with LedgerClient(ledger) as client:
        neurons = {n["hotkey"]: n for n in client.metagraph(arm.netuid)["neurons"]}
    return {role: int(neurons[Keypair.dev(arm.name(role)).ss58_address]["stake"])
            for role in ("h0", "h1", "copier")}


@pytest.fixture(scope="module")
def experiment(
    tmp_path_factory: pytest.TempPathFactory, module_redis: RedisServer,
    module_ledger: LedgerProcess,
) -> Iterator[Experiment]:
    logs = tmp_path_factory.mktemp("copier") / "logs"
    ledger, redis = module_ledger, module_redis
    supervisor = Supervisor()
    try:
        arms = []
        for commit_reveal, prefix in ((False, "cr-off"), (True, "cr-on")):
            arm = Arm(commit_reveal, 0, prefix)
            arm.netuid = bootstrap_subnet(
                ledger.url, Keypair.dev("alice"), _hyper(commit_reveal),
                miners=[Keypair.dev(arm.name(r)) for r in ("m0", "m1", "lazy")],
                validators=[(Keypair.dev(arm.name(r)), STAKE) for r in ("h0", "h1", "copier")])
            arms.append(arm)
        miners = [
            miner_child(arm.name(role), arm.netuid, ledger.url, logs,
                        *(["--behaviour", "lazy"] if role == "lazy" else []))
            for arm in arms for role in ("m0", "m1", "lazy")
        ]
        supervisor.start_all(miners, timeout=120)
        for arm in arms:
            for role in ("h0", "h1", "copier"):
                behaviour = "weight-copier" if role == "copier" else "honest"
                arm.validators[role] = validator_child(
                    arm.name(role), arm.netuid, ledger.url, redis.url, logs,
                    "--behaviour", behaviour)
        supervisor.start_all([c for arm in arms for c in arm.validators.values()], timeout=120)
        yield Experiment(redis, ledger, arms)
    finally:
        supervisor.stop_all()


def _epochs_run(ledger: str, netuid: int) -> int:
    with LedgerClient(ledger) as client:
        return int(client.subnet(netuid)["epochs_run"])


def _wait_epochs(ledger: str, arm: Arm, epochs: int) -> None:
    wait_until(lambda: _epochs_run(ledger, arm.netuid) >= epochs, 60 * EPOCHS,
               f"{epochs} epochs on {arm.prefix}")


def _counter(child: Child, name: str, **labels: str) -> float:
    assert child.health_url is not None
    text = httpx.get(child.health_url.replace("/healthz", "/metrics"), timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and labels.items() <= s.labels.items())


def _honest_weights_on_chain(ledger: str, arm: Arm) -> bool:
    with LedgerClient(ledger) as client:
        rows = {r["hotkey"] for r in client.weights(arm.netuid)["rows"] if r["weights"]}
    return all(Keypair.dev(arm.name(r)).ss58_address in rows for r in ("h0", "h1"))


def _relative_yields(experiment: Experiment) -> dict[bool, dict[str, float]]:
    """Each arm from the moment both honest validators' weights are on chain (set, or
    revealed) for the next epoch, over `EPOCHS` epochs: the copier's dividends (stake
    gained) per the honest validators' mean. Aligning the arms there leaves out how fast
    the processes happened to start; what remains is how late the copier's weights follow
    the honest ones (one epoch without commit-reveal, two with)."""
    url = experiment.ledger.url
    start: dict[int, int] = {}
    deadline = time.monotonic() + 120
    while len(start) < len(experiment.arms):  # both arms watched at once: aligned starts
        assert time.monotonic() < deadline, "honest weights never reached the chain"
        for arm in experiment.arms:
            if arm.netuid not in start and _honest_weights_on_chain(url, arm):
                start[arm.netuid] = _epochs_run(url, arm.netuid)
                arm.stake_before = _stakes(url, arm)
        time.sleep(0.1)
    for arm in experiment.arms:
        _wait_epochs(url, arm, start[arm.netuid] + EPOCHS)
    figures = {}
    for arm in experiment.arms:
        after = _stakes(url, arm)
        gained = {role: (after[role] - arm.stake_before[role]) / TOKEN for role in after}
        honest = (gained["h0"] + gained["h1"]) / 2
        figures[arm.commit_reveal] = {
            "epochs": EPOCHS, "copier_dividends_tokens": round(gained["copier"], 6),
            "honest_dividends_tokens": round(honest, 6),
            "relative_yield": round(gained["copier"] / honest, 4) if honest > 0 else 0.0}
    return figures


def test_commit_reveal_lowers_what_the_weight_copier_earns(experiment: Experiment) -> None:
    figures = _relative_yields(experiment)
    print("commit-reveal off:", json.dumps(figures[False]))
    print("commit-reveal on: ", json.dumps(figures[True]))
    assert figures[False]["honest_dividends_tokens"] > 0
    assert figures[True]["honest_dividends_tokens"] > 0
    assert figures[True]["relative_yield"] < figures[False]["relative_yield"]


def test_every_commit_is_revealed_in_its_epoch_despite_the_rate_limit(
    experiment: Experiment,
) -> None:
    arm = next(a for a in experiment.arms if a.commit_reveal)
    url = experiment.ledger.url
    start = _epochs_run(url, arm.netuid)
    wait_until(lambda: _epochs_run(url, arm.netuid) >= start + 4, 120, "four more epochs")
    with LedgerClient(url) as client:
        rows = {r["hotkey"]: r for r in client.weights(arm.netuid)["rows"]}
    for role, child in arm.validators.items():
        hotkey = Keypair.dev(arm.name(role)).ss58_address
        assert rows[hotkey]["weights"], f"{role}: nothing revealed"
        revealed = _counter(child, "subnetlab_validator_reveals_total", outcome="ok")
        missed = _counter(child, "subnetlab_validator_reveals_total", outcome="missed")
        print(role, "reveals ok:", revealed, "missed:", missed)
        assert revealed >= 2 and missed == 0
    honest = Keypair.dev(arm.name("h0")).ss58_address
    with LedgerClient(url) as client:
        epochs = sorted(int(d["epoch"]) for d in client.evidence(arm.netuid, hotkey=honest))
    proc = subprocess.run(
        [sys.executable, "-m", "subnetlab", "audit", str(arm.netuid), "--validator", honest,
         "--epoch", str(epochs[-2]), "--ledger", url, "--redis-url", experiment.redis.url,
         "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["chain_ok"] and verdict["chain_source"].startswith("commit_weights in block")

