"""The experiments `subnetlab experiment` knows, by name, with the claim each one tests.

Only experiments that run for real are listed (no placeholders).
"""

from __future__ import annotations

from subnetlab.experiments import audit, cabal, copier, miners, overhead, stake_quality
from subnetlab.experiments.common import SCRIPTED_CHAIN, SCRIPTED_NEURONS, Experiment, Row
from subnetlab.experiments.figures import (
    cabal_figure,
    copier_figure,
    miners_figure,
    overhead_figure,
    stake_quality_figure,
)

NOT_RUN = ("ledger, Redis, HTTP, miner and validator processes, inference engines: "
           "not used (no network)")
MINER_ANSWERS = ("miners' answers: scripted (each agrees with the validator's reference with "
                 "its type's probability; no engine generates text)")
MINER_COSTS = ("money: a cost model (experiments/cost_model.py: GPU, API and host prices with "
               "documented defaults), not measured bills")
OVERHEAD_REAL = ("ledger (FastAPI on an embedded Redis), blocks and Yuma epochs; miner and "
                 "validator processes, the signed miner protocol over loopback HTTP, each "
                 "validator's organic gateway and synthetic validation loop; token counts "
                 "from every process's own counters; latencies as the client saw them")
OVERHEAD_SIMULATED = (
    "miners' inference: sim engines (modelled time to first token and tokens/s, 4 characters "
    "a token), except points with --engine vllm (a tiny random-weight model on the CPU vLLM "
    "build: real compute, noise for answers)",
    "validators' reference model: the simulated oracle in every point",
    "organic customers: a scripted open-loop client (evenly spaced requests, seeded "
    "verifiable prompts)")
AUDIT_REAL = ("ledger (FastAPI on an embedded Redis), blocks, Yuma epochs and the block log "
              "replayed from genesis; miner processes signing their answers; honest, "
              "weight-copier and lazy validator processes writing their evidence to Redis "
              "and committing its digests on chain; `subnetlab audit`'s code over HTTP")
AUDIT_SIMULATED = (
    "miners' inference: sim engines (modelled answers, honest and lazy miners)",
    "validators' reference model: the simulated oracle",
    "the fabricating copier: scripted by the experiment (it asks no miner; it sets the weights "
    "its made-up evidence implies and commits that evidence with real extrinsics)")
SPOT_CHECK_RULE = ("who a spot-check catches: validator.spotcheck.caught, the gateway's own "
                   "rule, real code")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        name="overhead", claim=1,
        claim_text="every organic answer costs N+V compute",
        measures="tokens spent per delivered organic token on the organic path (organic "
        "ratio) and in all (total ratio: the validators' synthetic queries included), and "
        "latency p50/p99 against one miner called directly, over fan-out, strategy, "
        "validators and organic rate, on real processes",
        params=overhead.PARAMS, run_point=overhead.run_point, summary=overhead.summary,
        verdict=overhead.verdict, figure=overhead_figure, narrow=overhead.narrow,
        simulated=OVERHEAD_SIMULATED, real=(OVERHEAD_REAL,)),
    Experiment(
        name="cabal", claim=2,
        claim_text="more than half of a subnet's validator stake captures it; niche "
        "(low-stake) subnets are cheaper to attack",
        measures="cabal miners' incentive, cabal validators' dividends and the cabal's "
        "emission share against the cabal's stake share, per kappa; stake needed to capture "
        "against the subnet's stake",
        params=cabal.PARAMS, run_point=cabal.run_point, summary=cabal.summary,
        verdict=cabal.verdict, figure=cabal_figure,
        simulated=(SCRIPTED_NEURONS, NOT_RUN), real=(SCRIPTED_CHAIN,)),
    Experiment(
        name="copier", claim=3,
        claim_text="validators copy weights; commit-reveal is the remedy",
        measures="copiers' dividends per stake relative to honest validators (95% CI across "
        "seeds) against the commit-reveal period, copier stake, number of copiers and miner "
        "churn; miner evaluations the copiers skipped",
        params=copier.PARAMS, run_point=copier.run_point, summary=copier.summary,
        verdict=copier.verdict, figure=copier_figure,
        simulated=(SCRIPTED_NEURONS, NOT_RUN), real=(SCRIPTED_CHAIN,)),
    Experiment(
        name="miners", claim=4,
        claim_text="passthrough and copycat miners are indistinguishable from honest ones and "
        "out-earn them",
        measures="net profit per miner type (honest, passthrough, copycat, sybil, lazy: the "
        "chain's emission at the cost model's prices minus GPU, API and host costs) and how "
        "often the gateway's spot-checks catch each, against the spot-check rate, the "
        "upstream's accuracy, the API price and the GPU price",
        params=miners.PARAMS, run_point=miners.run_point, summary=miners.summary,
        verdict=miners.verdict, figure=miners_figure,
        simulated=(SCRIPTED_NEURONS, MINER_ANSWERS, MINER_COSTS, NOT_RUN),
        real=(SCRIPTED_CHAIN, SPOT_CHECK_RULE), default_seeds=30),
    Experiment(
        name="stake-vs-quality", claim=5,
        claim_text="stake, not answer quality, decides rewards; newcomers join the popular "
        "cabal",
        measures="cabal miners' incentive share over (cabal stake share, cabal miner "
        "accuracy); the cabal side's share over time as entrants join the side that pays more",
        params=stake_quality.PARAMS, run_point=stake_quality.run_point,
        summary=stake_quality.summary, verdict=stake_quality.verdict,
        figure=stake_quality_figure,
        simulated=(SCRIPTED_NEURONS, NOT_RUN), real=(SCRIPTED_CHAIN,)),
    Experiment(
        name="audit", claim=6,
        claim_text="rewards are not auditable from the chain",
        measures="every epoch's incentive and dividends recomputed from on-chain weights and "
        "stake against the served metagraph (match rate); the evidence audit's flags per "
        "validator behaviour and per way of fabricating evidence, with and without the "
        "miners' answer signatures (detection rate)",
        params=audit.PARAMS, run_point=audit.run_point, summary=audit.summary,
        verdict=audit.verdict, figure=audit.figure,
        simulated=AUDIT_SIMULATED, real=(AUDIT_REAL,), quick_seeds=1),
)}


def run_one(name: str, point: Row) -> Row:
    """Run one point of experiment `name` (a top-level function: worker processes pickle it)."""
    return EXPERIMENTS[name].run_point(point)
