"""Keys on a cluster: dev keys, generated keys, adopted and imported Secrets."""

from __future__ import annotations

import base64
import json

import pytest

from subnetlab.k8s.keys import (
    HOTKEY_KEY,
    KeyMaterialError,
    cluster_key_problem,
    key_from_secret,
    resolve_key,
    resolve_sybil_keys,
    secret_data,
    stored_sybil_keys,
    sybil_secret_keys,
)
from subnetlab.keys.keypair import Keypair
from subnetlab.specs import KeySource

WHERE = "Secret ns/m0-hotkey"


def as_data(values: dict[str, str]) -> dict[str, str]:
    """What the API server returns: base64 `data`."""
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def test_a_generated_key_is_written_once_then_adopted() -> None:
    first = resolve_key(KeySource(), None, WHERE)
    assert first.write_secret and first.keypair.mnemonic
    stored = as_data(secret_data(first.keypair))
    again = resolve_key(KeySource(), stored, WHERE)
    assert not again.write_secret
    assert again.keypair.ss58_address == first.keypair.ss58_address


def test_dev_key_wins_and_rewrites_a_secret_holding_another_key() -> None:
    other = as_data(secret_data(Keypair.generate()))
    resolved = resolve_key(KeySource(dev_key="miner-0"), other, WHERE)
    assert resolved.write_secret
    assert resolved.keypair.ss58_address == Keypair.dev("miner-0").ss58_address
    same = as_data(secret_data(Keypair.dev("miner-0")))
    assert not resolve_key(KeySource(dev_key="miner-0"), same, WHERE).write_secret


def test_a_hand_made_secret_with_a_mnemonic_is_imported() -> None:
    key = Keypair.generate()
    assert key.mnemonic is not None
    resolved = resolve_key(KeySource(), as_data({"mnemonic": key.mnemonic}), WHERE)
    assert resolved.keypair.ss58_address == key.ss58_address
    assert resolved.write_secret  # rewritten in the wallet format pods mount


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({HOTKEY_KEY: "%%%"}, "data.hotkey is not base64"),
        (as_data({HOTKEY_KEY: "not json"}), "data.hotkey is not a key file"),
        (as_data({HOTKEY_KEY: json.dumps({"version": 9})}), "not a version-1"),
        (as_data({"mnemonic": "alpha beta gamma secretword"}), "invalid mnemonic"),
    ],
)
def test_bad_secrets_name_the_secret_and_never_echo_it(data: dict[str, str],
                                                      expected: str) -> None:
    with pytest.raises(KeyMaterialError) as info:
        key_from_secret(data, WHERE)
    assert expected in str(info.value)
    assert "secretword" not in str(info.value)


def test_a_tampered_key_file_is_refused() -> None:
    document = json.loads(secret_data(Keypair.generate())[HOTKEY_KEY])
    document["ss58_address"] = Keypair.generate().ss58_address
    with pytest.raises(KeyMaterialError, match="does not match the stored address"):
        key_from_secret(as_data({HOTKEY_KEY: json.dumps(document)}), WHERE)


def test_wallets_on_disk_are_refused_on_a_cluster() -> None:
    assert cluster_key_problem(KeySource(dev_key="a"), "spec.wallet") is None
    problem = cluster_key_problem(KeySource(wallet="mine"), "spec.wallet")
    assert problem is not None and problem.startswith("spec.wallet.wallet:")
    assert key_from_secret(None, WHERE) is None and key_from_secret({}, WHERE) is None


# ---- a sybil's further hotkeys ------------------------------------------------------------


def test_sybil_keys_are_generated_once_kept_and_the_surplus_found() -> None:
    primary = Keypair.generate()
    first = resolve_sybil_keys(KeySource(), 2, as_data(secret_data(primary)), WHERE)
    assert sorted(first.write) == sybil_secret_keys(2) == ["default-sybil-1", "default-sybil-2"]
    assert len(set(first.addresses)) == 2 and primary.ss58_address not in first.addresses
    assert first.surplus == {}
    stored = as_data({**secret_data(primary), **first.write})
    again = resolve_sybil_keys(KeySource(), 2, stored, WHERE)
    assert again.write == {} and again.addresses == first.addresses  # kept, not regenerated
    more = resolve_sybil_keys(KeySource(), 3, stored, WHERE)
    assert list(more.write) == ["default-sybil-3"] and more.addresses[:2] == first.addresses
    fewer = resolve_sybil_keys(KeySource(), 1, stored, WHERE)
    assert fewer.addresses == first.addresses[:1] and fewer.write == {}
    assert {k: v.ss58_address for k, v in fewer.surplus.items()} == {
        "default-sybil-2": first.addresses[1]}
    none = resolve_sybil_keys(KeySource(), 0, stored, WHERE)  # behaviour no longer sybil
    assert none.keys == [] and sorted(none.surplus) == ["default-sybil-1", "default-sybil-2"]
    assert {k: v.ss58_address for k, v in stored_sybil_keys(stored, WHERE).items()} == {
        "default-sybil-1": first.addresses[0], "default-sybil-2": first.addresses[1]}


def test_a_dev_key_sybils_further_hotkeys_are_the_dev_keys_up_derives() -> None:
    resolved = resolve_sybil_keys(KeySource(dev_key="m"), 2, None, WHERE)
    assert resolved.addresses == [Keypair.dev("m-sybil-1").ss58_address,
                                  Keypair.dev("m-sybil-2").ss58_address]
    wrong = as_data({"default-sybil-1": secret_data(Keypair.generate())[HOTKEY_KEY]})
    fixed = resolve_sybil_keys(KeySource(dev_key="m"), 1, wrong, WHERE)
    assert list(fixed.write) == ["default-sybil-1"]  # corrected to the dev key
    assert json.loads(fixed.write["default-sybil-1"])["ss58_address"] == fixed.addresses[0]


def test_a_damaged_sybil_entry_names_its_data_key_and_never_echoes_it() -> None:
    with pytest.raises(KeyMaterialError) as info:
        resolve_sybil_keys(KeySource(), 1, as_data({"default-sybil-1": "secretword"}), WHERE)
    assert str(info.value) == f"{WHERE}: data.default-sybil-1 is not a key file (JSON)"
    assert stored_sybil_keys(as_data({"default-sybil-x": "ignored", "other": "x"}), WHERE) == {}
