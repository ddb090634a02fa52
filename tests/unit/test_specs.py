"""Subnet/Neuron specs: the bundled examples load, bad specs name file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from subnetlab.specs import SpecError, load_specs

EXAMPLES = Path(__file__).parents[2] / "manifests" / "examples"

SUBNET = """
apiVersion: subnetlab.io/v1alpha1
kind: Subnet
metadata: {name: s}
spec: {hyperparameters: {tempo: 20}}
"""


def test_bundled_examples_load() -> None:
    default = load_specs([EXAMPLES / "default.yaml"])
    roles = [n.spec.role for n in default.neurons]
    assert roles.count("miner") == 6 and roles.count("validator") == 2
    assert [n.spec.behaviour for n in default.neurons].count("lazy") == 1
    gpu = load_specs([EXAMPLES / "gpu.yaml"])
    backends = {n.spec.miner.backend.type for n in gpu.neurons if n.spec.miner}
    assert backends == {"vllm"}
    adversarial = load_specs([EXAMPLES / "adversarial.yaml"])
    behaviours = {n.spec.behaviour for n in adversarial.neurons}
    assert {"lazy", "passthrough", "weight-copier"} <= behaviours
    assert len(load_specs([EXAMPLES]).subnets) == 3  # a directory loads every file


def test_camel_case_hyperparameters_reach_the_chain_model() -> None:
    network = load_specs([EXAMPLES / "default.yaml"])
    hp = network.subnets[0].spec.hyperparameters
    assert hp.tempo == 20 and hp.weights_rate_limit == 5


@pytest.mark.parametrize(
    ("neuron", "expected"),
    [
        ("spec: {subnet: s, role: boss}", "spec.role"),
        ("spec: {subnet: s, role: miner, behaviour: weight-copier}",
         "not a miner behaviour"),
        ("spec: {subnet: s, role: miner, stake: -1}", "spec.stake"),
        ("spec: {subnet: other, role: miner}", "no Subnet named 'other'"),
        ("spec: {subnet: s, role: miner, miner: {backend: {type: tpu}}}", "spec.miner.backend"),
        ("spec: {subnet: s, role: validator, validator: {sampleSize: 0}}",
         "spec.validator.sampleSize"),
        ("spec: {subnet: s, role: miner, behaviour: copycat}", "copyFrom"),
    ],
)
def test_bad_neuron_specs_are_refused_with_file_and_field(
    tmp_path: Path, neuron: str, expected: str
) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(SUBNET + "---\napiVersion: subnetlab.io/v1alpha1\nkind: Neuron\n"
                    "metadata: {name: n}\n" + neuron + "\n")
    with pytest.raises(SpecError) as info:
        load_specs([path])
    assert str(path) in str(info.value) or "Neuron n" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: Pod\nmetadata: {name: x}\n", "kind: must be Subnet or Neuron"),
        ("kind: Subnet\nmetadata: {name: Bad_Name}\n", "metadata.name"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {kappa: 2}}\n",
         "spec.hyperparameters.kappa"),
        ("kind: Subnet\nmetadata: {name: s}\nspec: {hyperparameters: {tempoo: 2}}\n",
         "tempoo"),
        ("kind: Subnet\n  bad: [yaml\n", "not valid YAML"),
    ],
)
def test_bad_subnet_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=expected.replace("[", r"\[")):
        load_specs([path])


def test_duplicates_and_empty(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SUBNET + "---\n" + SUBNET)
    with pytest.raises(SpecError, match="defined twice"):
        load_specs([tmp_path / "a.yaml"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError, match=r"no \.yaml files"):
        load_specs([empty])
