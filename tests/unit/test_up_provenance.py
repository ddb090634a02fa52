"""What `subnetlab up` reports a run was made of: neuron seeds and the simulated/real parts;
and the sim engine whose answers the seed can repeat."""

from __future__ import annotations

from pathlib import Path

from subnetlab.engines import SimBackend, SimModel
from subnetlab.local.provenance import SEED_MAX, components, neuron_seed, new_seed
from subnetlab.specs import load_specs
from subnetlab.tasks import generate, solve
from tests.conftest import CliRun

EXAMPLES = Path(__file__).parents[2] / "manifests" / "examples"


def test_neuron_seeds_come_from_the_run_seed_and_the_name() -> None:
    assert neuron_seed(11, "validator") == neuron_seed(11, "validator")
    assert len({neuron_seed(11, "validator"), neuron_seed(12, "validator"),
                neuron_seed(11, "validator-2")}) == 3
    assert 0 <= neuron_seed(2**31 - 1, "x") < 2**63
    assert 0 <= new_seed() <= SEED_MAX


def test_the_adversarial_example_names_each_simulated_part() -> None:
    parts = components(load_specs([EXAMPLES / "adversarial.yaml"]))
    simulated = "\n".join(parts["simulated"])
    engines = next(i for i in parts["simulated"] if i.startswith("inference: sim engines"))
    assert "honest-miner-0" in engines and "sybil-miner" in engines
    assert "lazy-miner" not in engines and "copycat-miner" not in engines  # not their answers
    assert "shared simulated engine (local-sim-engine) behind passthrough-miner, " \
           "copycat-miner" in simulated
    assert "reference oracle (always right) of honest-validator, copier-validator" in simulated
    assert "copier-validator (weight-copier)" in simulated and "lazy-miner (lazy)" in simulated
    assert not any("vLLM" in item for item in parts["real"])


def test_the_gpu_example_has_real_engines() -> None:
    parts = components(load_specs([EXAMPLES / "gpu.yaml"]))
    assert any(item.startswith("inference: vLLM engines") for item in parts["real"])
    assert not any("sim engines" in item for item in parts["simulated"])


def test_a_sim_answer_is_a_function_of_seed_name_and_prompt_not_of_order() -> None:
    prompts = [generate("arithmetic", seed).prompt for seed in range(40)]
    first = SimBackend(SimModel(default_accuracy=0.5), "m")
    second = SimBackend(SimModel(default_accuracy=0.5), "m")
    forward = [first.answer(p) for p in prompts]
    backward = [second.answer(p) for p in reversed(prompts)][::-1]
    assert forward == backward
    right = sum(a == solve(p) for a, p in zip(forward, prompts, strict=True))
    assert 5 < right < 35  # about half right: errors are drawn, not fixed
    other = [SimBackend(SimModel(default_accuracy=0.5), "n").answer(p) for p in prompts]
    assert other != forward  # another engine errs on other prompts


def test_a_validator_seed_out_of_range_is_one_line_naming_the_flag(cli: CliRun) -> None:
    proc = cli("validator", "run", "--seed", "-1")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Invalid value for '--seed': Input should be "
                                  "greater than or equal to 0")
