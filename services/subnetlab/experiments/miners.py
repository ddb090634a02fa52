"""Claim 4: passthrough and copycat miners are indistinguishable from honest ones, and
out-earn them.

One subnet, five miner types side by side: two honest miners, a passthrough miner (an
upstream API of `upstream_accuracy` answers for it), a copycat (it relays honest miner 0's
engine), a sybil (one honest engine behind three hotkeys) and a lazy miner (a canned wrong
answer). Three honest validators score every miner each epoch by the accuracy they observe
(x U(0.9, 1.1) noise) and serve organic requests with the gateway's spot-check strategy:
each request goes to one miner, and with probability `spot_check_rate` it is re-asked to
two others and graded against the validator's reference; the chain's own rule
(`validator.spotcheck.caught`: the one answer that disagrees while the others agree)
decides who is caught, and a caught miner's weight from that validator is zero for the
epoch (the gateway cuts its moving score to zero). The chain's epoch decides the
incentive; :mod:`subnetlab.experiments.cost_model` turns incentive and work into dollars.

Whether an answer agrees with the reference is drawn per answer: miners that run (or
relay) the subnet's model agree with probability `SAME_MODEL_AGREEMENT`, a passthrough's
upstream with the swept `upstream_agreement` (the same model behind the API agrees as
often as an honest miner; another model less often), a lazy answer never.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from subnetlab.experiments.common import Row, fmt, mean, rounded, share
from subnetlab.experiments.cost_model import MINER_TYPES, CostModel
from subnetlab.experiments.stats import mean_ci, summarise
from subnetlab.experiments.sweep import Param
from subnetlab.keys.keypair import Keypair
from subnetlab.sim.scripted import WeightSubmitter, hyperparameters, new_subnet
from subnetlab.validator.spotcheck import caught

VALIDATORS = 3
VALIDATOR_STAKE = 1000.0  # tokens, split among the validators by the seed
HONEST_MINERS = 2
SYBIL_HOTKEYS = 3  # the sybil's own hotkey and two more, as in the adversarial example
HONEST_ACCURACY = (0.7, 0.9)  # honest engines' accuracy is drawn in this range per seed
LAZY_ACCURACY = 0.05  # a canned answer is right by accident only
SAME_MODEL_AGREEMENT = 0.97  # the subnet's model agrees with the reference's (sampling noise)
ORGANIC_PER_EPOCH = 30  # organic requests each validator's gateway serves per epoch
SPOT_CHECK_OTHERS = 2  # the gateway's default `spot_check_others`
TEMPO = 10
Z_TWO_TESTS = 2.24  # one-sided 1.25% per test: 2.5% across the verdict's two questions (Bonferroni)

PARAMS = (
    Param("spot_check_rate", "--spot-check-rates", float, 0, 1, (0.0, 0.05, 0.1, 0.3),
          (0.0, 0.1, 0.3), "share of organic requests the gateway re-checks"),
    Param("upstream_accuracy", "--upstream-accuracies", float, 0, 1, (0.7, 0.95), (0.95,),
          "accuracy of the passthrough miner's upstream API"),
    Param("upstream_agreement", "--upstream-agreements", float, 0, 1, (0.9, 0.97), (0.9,),
          "chance that the upstream's answer agrees with the validator's reference (0.97: "
          "the subnet's own model behind the API; lower: another model)"),
    Param("api_price", "--api-prices", float, 0, 1000, (0.2, 2.0), (0.2,),
          "USD per million tokens the passthrough miner pays its upstream"),
    Param("gpu_cost", "--gpu-costs", float, 0, 1000, (2.5,), (2.5,),
          "USD per GPU-hour an engine-running miner pays", lo_open=True),
    Param("epochs", "--epochs", int, 2, 100_000, (60,), (8,), "epochs per run"),
)


@dataclass
class Miner:
    """One operator: its type, hotkeys (uids), accuracy and spot-check agreement."""

    kind: str
    uids: list[int]
    accuracy: float
    agreement: float
    checks: int = 0
    catches: int = 0
    epochs_caught: int = 0


def _miners(name: str, rng: np.random.Generator, upstream_accuracy: float,
            upstream_agreement: float) -> tuple[list[Miner], list[Keypair]]:
    """The operators and their hotkeys, in registration order."""
    honest = rng.uniform(*HONEST_ACCURACY, HONEST_MINERS)
    plan = [*(("honest", 1, float(a), SAME_MODEL_AGREEMENT) for a in honest),
            ("passthrough", 1, upstream_accuracy, upstream_agreement),
            ("copycat", 1, float(honest[0]), SAME_MODEL_AGREEMENT),
            ("sybil", SYBIL_HOTKEYS, float(rng.uniform(*HONEST_ACCURACY)), SAME_MODEL_AGREEMENT),
            ("lazy", 1, LAZY_ACCURACY, 0.0)]
    miners, keys = [], []
    for i, (kind, hotkeys, accuracy, agreement) in enumerate(plan):
        keys += [Keypair.dev(f"{name}-{kind}-{i}-{h}") for h in range(hotkeys)]
        miners.append(Miner(kind, [], accuracy, agreement))
    return miners, keys


def run_point(point: Row) -> Row:
    """One subnet with every miner type; shares over the last half, catches over the run."""
    rate, epochs, seed = float(point["spot_check_rate"]), int(point["epochs"]), point["seed"]
    rng = np.random.default_rng(seed)
    name = f"miners-exp-{seed}"
    subnet = new_subnet(name, hyperparameters(TEMPO))
    validators = [Keypair.dev(f"{name}-validator-{i}") for i in range(VALIDATORS)]
    subnet.register(validators)
    miners, keys = _miners(name, rng, float(point["upstream_accuracy"]),
                          float(point["upstream_agreement"]))
    uids = subnet.register(keys)
    it = iter(uids)
    for m in miners:
        m.uids = [next(it) for _ in range(SYBIL_HOTKEYS if m.kind == "sybil" else 1)]
    for key, part in zip(validators, rng.dirichlet(np.ones(VALIDATORS)), strict=True):
        subnet.stake(key, VALIDATOR_STAKE * part)
    owner = {uid: m for m in miners for uid in m.uids}
    accuracy = np.array([owner[u].accuracy for u in uids])
    submitter = WeightSubmitter(subnet, 0, rng)
    subnet.chain.until_epoch(subnet.netuid, 1)
    shares: dict[int, list[float]] = {id(m): [] for m in miners}
    for epoch in range(1, epochs + 1):
        caught_now: set[int] = set()
        for key in validators:
            penalised = _serve_organic(rng, uids, owner, rate)
            caught_now |= penalised
            scores = accuracy * rng.uniform(0.9, 1.1, len(uids))
            scores[[i for i, u in enumerate(uids) if u in penalised]] = 0.0
            submitter.submit(key, uids, scores)
        for m in miners:
            m.epochs_caught += bool(caught_now & set(m.uids))
        subnet.chain.until_epoch(subnet.netuid, epoch + 1)
        if epoch > epochs // 2:
            rows = subnet.rows()
            total = sum(r["incentive"] for r in rows)
            for m in miners:
                shares[id(m)].append(share(sum(r["incentive"] for r in rows
                                               if r["uid"] in m.uids), total))
    costs = CostModel(gpu_cost_per_hour=float(point["gpu_cost"]),
                      api_price_per_million_tokens=float(point["api_price"]))
    out: Row = dict(point)
    for kind in MINER_TYPES:
        of_kind = [m for m in miners if m.kind == kind]
        incentive = mean(mean(shares[id(m)]) for m in of_kind)
        hotkeys = len(of_kind[0].uids)
        out |= {f"{kind}_incentive_share": rounded(incentive),
                f"{kind}_revenue_usd_day": rounded(costs.revenue_per_day(incentive)),
                f"{kind}_cost_usd_day": rounded(costs.cost_per_day(kind, hotkeys)),
                f"{kind}_profit_usd_day": rounded(costs.profit_per_day(kind, incentive, hotkeys)),
                f"{kind}_detection_rate": rounded(mean(m.epochs_caught / epochs for m in of_kind)),
                f"{kind}_checks": sum(m.checks for m in of_kind),
                f"{kind}_catches": sum(m.catches for m in of_kind)}
    return out


def _serve_organic(rng: np.random.Generator, uids: list[int], owner: dict[int, Miner],
                   rate: float) -> set[int]:
    """One validator's organic requests of an epoch: the uids its spot-checks caught."""
    found: set[int] = set()
    for _ in range(ORGANIC_PER_EPOCH):
        delivered = int(rng.choice(uids))
        if rng.random() >= rate:
            continue
        others = [int(u) for u in rng.choice([u for u in uids if u != delivered],
                                             SPOT_CHECK_OTHERS, replace=False)]
        similarity = {u: 1.0 if rng.random() < owner[u].agreement else 0.0
                      for u in (delivered, *others)}
        for uid in similarity:
            owner[uid].checks += 1
        for uid in caught(similarity):
            owner[uid].catches += 1
            found.add(uid)
    return found


def long_rows(rows: Sequence[Row]) -> list[Row]:
    """One row per (point, miner type), for figures and tables that draw a line per type."""
    return [{"miner": kind, "spot_check_rate": r["spot_check_rate"],
             "profit": r[f"{kind}_profit_usd_day"], "detection": r[f"{kind}_detection_rate"],
             "incentive": r[f"{kind}_incentive_share"]}
            for r in rows for kind in MINER_TYPES]


KEYS = ("spot_check_rate", "upstream_accuracy", "upstream_agreement", "api_price", "gpu_cost")


def summary(rows: Sequence[Row]) -> list[str]:
    """Net profit per miner type per point; detection and catches per check by rate."""
    lines = ["Net profit per operator, USD per day (emission earned minus cost; a sybil is one "
             "operator with three hotkeys):", "",
             "| spot-check rate | upstream accuracy | upstream agreement | API $/M tokens | "
             "GPU $/h | " + " | ".join(MINER_TYPES) + " | seeds |",
             "|---|---|---|---|---|" + "---|" * len(MINER_TYPES) + "---|"]
    cells = {kind: {k: (m, h) for k, m, h, _ in summarise(rows, KEYS, f"{kind}_profit_usd_day")}
             for kind in MINER_TYPES}
    for key, _, _, n in summarise(rows, KEYS, "honest_profit_usd_day"):
        profits = " | ".join(f"{cells[k][key][0]:,.0f} ± {cells[k][key][1]:,.0f}"
                             for k in MINER_TYPES)
        lines.append(f"| {' | '.join(str(v) for v in key)} | {profits} | {n} |")
    lines += ["", "Incentive share per operator and how often each is caught (share of epochs "
              "in which a validator's spot-check caught it; catches per answer checked), "
              "over every other parameter:", "",
              "| spot-check rate | miner | incentive share | detection rate | "
              "caught per check |", "|---|---|---|---|---|"]
    for (rate,), members in _by_rate(rows).items():
        for kind in MINER_TYPES:
            inc = mean_ci([r[f"{kind}_incentive_share"] for r in members])
            det = mean_ci([r[f"{kind}_detection_rate"] for r in members])
            lines.append(f"| {rate} | {kind} | {fmt(inc[0])} ± {fmt(inc[1])} | "
                         f"{fmt(det[0])} ± {fmt(det[1])} | {_per_check(members, kind)} |")
    return lines


def _by_rate(rows: Sequence[Row]) -> dict[tuple[float], list[Row]]:
    out: dict[tuple[float], list[Row]] = {}
    for row in sorted(rows, key=lambda r: r["spot_check_rate"]):
        out.setdefault((row["spot_check_rate"],), []).append(row)
    return out


def _per_check(rows: Sequence[Row], kind: str) -> str:
    checks = sum(r[f"{kind}_checks"] for r in rows)
    return fmt(sum(r[f"{kind}_catches"] for r in rows) / checks) if checks else "-"


def told_apart(rows: Sequence[Row], kind: str, baseline: str = "honest") -> bool:
    """Whether spot-checks catch `kind` more often per answer checked than `baseline`: a
    one-sided two-proportion z-test on the counts pooled over seeds, z > `Z_TWO_TESTS`.

    Why per answer checked: the share of epochs caught depends on how many hotkeys a type
    has; the catches per check are many draws. Rows that differ only in prices or the
    upstream's accuracy reuse one seed's draws, so each (seed, upstream agreement) counts
    once: counting its copies would shrink the test's spread without new evidence."""
    distinct = {(r["seed"], r["upstream_agreement"]): r for r in rows}.values()
    n1 = sum(r[f"{kind}_checks"] for r in distinct)
    n2 = sum(r[f"{baseline}_checks"] for r in distinct)
    if not n1 or not n2:
        return False
    c1 = sum(r[f"{kind}_catches"] for r in distinct)
    c2 = sum(r[f"{baseline}_catches"] for r in distinct)
    pooled = (c1 + c2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return spread > 0 and (c1 / n1 - c2 / n2) / spread > Z_TWO_TESTS


def verdict(rows: Sequence[Row]) -> str:
    """Whether passthrough and copycat out-earn honest miners without spot-checks (the
    lowest swept rate), and whether the highest swept rate tells them apart (passthrough
    per upstream agreement: the same model behind the API, or another)."""
    by_rate = _by_rate(rows)
    low, high = min(by_rate)[0], max(by_rate)[0]
    checked = by_rate[(high,)]

    def profit(kind: str, rate: float) -> float:
        return mean(r[f"{kind}_profit_usd_day"] for r in by_rate[(rate,)])

    def caught_share(kind: str) -> str:
        return f"{mean(r[f'{kind}_detection_rate'] for r in checked):.0%}"

    richer = {k for k in ("passthrough", "copycat") if profit(k, low) > profit("honest", low)}
    agreements = sorted({r["upstream_agreement"] for r in checked})
    passthrough = {a: told_apart([r for r in checked if r["upstream_agreement"] == a],
                                 "passthrough") for a in agreements}
    copycat = told_apart(checked, "copycat")
    hidden = not copycat and not passthrough[agreements[-1]]
    holds = len(richer) == 2 and hidden
    partly = bool(richer) or hidden or not copycat
    earned = ", ".join(f"{k} {profit(k, low):,.0f}" for k in ("passthrough", "copycat", "sybil"))
    told = [str(a) for a in agreements if passthrough[a]]
    untold = [str(a) for a in agreements if not passthrough[a]]
    seen = (f"copycat is {'' if copycat else 'not '}told apart from honest miners; passthrough "
            + (f"is when its upstream agrees with the reference {', '.join(told)} of the time"
               if told else "is not") + (f" and not at {', '.join(untold)}"
                                          if told and untold else ""))
    return (f"{'Supported' if holds else 'Partly supported' if partly else 'Not supported'}: "
            f"at spot-check rate {low} an honest miner nets {profit('honest', low):,.0f} USD/day "
            f"against {earned} (the sybil for three hotkeys); at rate {high} the lazy miner is "
            f"caught in {caught_share('lazy')} of epochs, honest miners in "
            f"{caught_share('honest')}, passthrough in {caught_share('passthrough')} and "
            f"copycat in {caught_share('copycat')}; per answer checked {seen} (one-sided "
            f"two-proportion tests, z > {Z_TWO_TESTS}); at that rate passthrough nets "
            f"{profit('passthrough', high):,.0f}, copycat {profit('copycat', high):,.0f} and "
            f"honest {profit('honest', high):,.0f}.")
