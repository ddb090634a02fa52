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
    secret_data,
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
