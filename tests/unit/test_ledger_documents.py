"""Reading the ledger API's documents: the one helper the CLI, operator and testnet share."""

from __future__ import annotations

from subnetlab.ledger.documents import neuron_row, stake_position, uid_of


def test_reading_positions_and_rows() -> None:
    account = {"stake": [{"hotkey": "a", "amount": 5}, {"hotkey": "b", "amount": 7}]}
    assert stake_position(account, "b") == 7 and stake_position(account, "c") == 0
    assert stake_position({}, "a") == 0
    metagraph = {"neurons": [{"uid": 0, "hotkey": "a"}, {"uid": 1, "hotkey": "b"}]}
    assert neuron_row(metagraph, "b") == {"uid": 1, "hotkey": "b"}
    assert neuron_row(metagraph, "z") is None
    assert uid_of(metagraph, "b") == 1 and uid_of(metagraph, "z") is None
    assert uid_of({}, "a") is None
