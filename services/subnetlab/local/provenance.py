"""What a `subnetlab up` run was made of: its seed, and which parts were simulated.

Why: a run's numbers mean something only beside what produced them. An incentive earned
from a simulated engine's answers, graded by a simulated oracle, says something about the
protocol and nothing about a model; the report, summary.json, run.json (and so `bench
organic`) say which parts were which, and the seed that repeats the run.

What the seed fixes (docs/testnet.md, "Seeds"): each validator's tasks and choices (its
`--seed`, derived here from the run's seed and its name), the organic traffic's prompts
and gateways, and, since a sim engine's answer is a function of its name and the prompt
alone, the sim engines' answers to those prompts. The genesis is the same too, except its
salt, which stays fresh per run on purpose: it is what makes a transaction signed for one
run's chain invalid on another's (same dev keys, same nonces), so a process left over from
an earlier run cannot replay into this one. Timing is not fixed: which round lands in
which epoch follows the machine's load.
"""

from __future__ import annotations

import hashlib
import secrets

from subnetlab.specs import LOCAL_SIM_ENGINE, Network, NeuronSpec

SEED_MAX = 2**31 - 1
"""Seeds are in [0, SEED_MAX] (`subnetlab up --seed`)."""


def new_seed() -> int:
    """A fresh seed for a run given none (the report names it, so the run can be repeated)."""
    return secrets.randbelow(SEED_MAX + 1)


def neuron_seed(run_seed: int, name: str) -> int:
    """The seed of neuron `name` in a run seeded `run_seed`: a hash of both, so that
    neurons of one run draw independent streams and a neuron's stream does not move when
    others are added to the specs."""
    digest = hashlib.sha256(f"{run_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


def _names(neurons: list[tuple[str, NeuronSpec]]) -> str:
    return ", ".join(name for name, _ in neurons)


def components(network: Network) -> dict[str, list[str]]:
    """`{"simulated": [...], "real": [...]}`: one line per kind of part, naming the neurons."""
    neurons = [(n.metadata.name, n.spec) for n in network.neurons]
    miners = [(name, s) for name, s in neurons if s.role == "miner" and s.miner]
    validators = [(name, s) for name, s in neurons if s.role == "validator" and s.validator]
    # a lazy miner's canned answer and a copycat's copied one do not come from its engine
    sim = [(n, s) for n, s in miners if s.miner and s.miner.backend.type == "sim"
           and s.behaviour not in ("lazy", "copycat")]
    shared = [(n, s) for n, s in miners if s.miner and LOCAL_SIM_ENGINE in (
        getattr(s.miner.backend, "url", None), s.miner.copy_from)]
    vllm = [(n, s) for n, s in miners if s.miner and s.miner.backend.type == "vllm"]
    remote = [(n, s) for n, s in miners if s.miner and s.miner.backend.type == "openai"
              and s.miner.backend.url != LOCAL_SIM_ENGINE]
    oracle = [(n, s) for n, s in validators if s.validator and
              s.validator.reference.backend == "sim"]
    graders = [(n, s) for n, s in validators if (n, s) not in oracle]
    scripted = [(f"{n} ({s.behaviour})", s) for n, s in neurons if s.behaviour != "honest"]
    simulated = []
    if sim:
        simulated.append(f"inference: sim engines (answers right with a set accuracy, "
                         f"modelled latency; no model): {_names(sim)}")
    if shared:
        simulated.append(f"inference: the shared simulated engine ({LOCAL_SIM_ENGINE}) "
                         f"behind {_names(shared)}")
    if oracle:
        simulated.append(f"grading: the simulated reference oracle (always right) of "
                         f"{_names(oracle)}")
    if scripted:
        simulated.append(f"behaviours: fixed scripted policies, in real processes: "
                         f"{_names(scripted)}")
    real = ["chain: the ledger process (the chain's state machine over HTTP, on Redis)",
            "neurons: every miner and validator is its own process; signed HTTP between "
            "them on loopback",
            "organic traffic: HTTP requests from `up` to the validators' gateways"]
    if vllm:
        real.append(f"inference: vLLM engines: {_names(vllm)}")
    if remote:
        real.append(f"inference: OpenAI-compatible servers at their URLs: {_names(remote)}")
    if graders:
        real.append(f"grading: reference models served by vLLM or OpenAI-compatible "
                    f"servers: {_names(graders)}")
    return {"simulated": simulated, "real": real}
