"""The CLI's pure pieces: amounts, uid/weight lists, hyperparameters, saved commits, epochs,
and the rules `validator run --cabal` and `miner serve`'s URL flags share with the specs.

These decide what reaches the chain (an amount in rao, a u16 weight vector, the salt of a
commit), so they are checked value by value here, without a process or a ledger.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from subnetlab.chain.weights import weights_commit_hash
from subnetlab.cli import commits
from subnetlab.cli.inputs import (
    InputError,
    parse_hyperparameters,
    parse_uids,
    parse_weights,
    parse_whole,
    weight_vector,
)
from subnetlab.keys.keypair import Keypair
from subnetlab.ledger.client import MAX_RAO, format_rao, parse_tokens
from subnetlab.miner.settings import from_serve_flags
from subnetlab.specs import NeuronSpec, cabal_problem
from subnetlab.wallet import HOME_ENV

HOTKEY = Keypair.dev("alice").ss58_address
GENESIS = "0x" + "ab" * 32

# ---- amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "rao"), [
    ("1", 10**9), ("1.5", 1_500_000_000), ("0.1", 100_000_000), ("0.000000001", 1),
    (" 12.5 ", 12_500_000_000), ("1e3", 10**12), (format_rao(MAX_RAO), MAX_RAO),
])
def test_tokens_convert_to_exact_rao(text: str, rao: int) -> None:
    assert parse_tokens(text) == rao
    assert parse_tokens(format_rao(rao)) == rao


@pytest.mark.parametrize(("text", "reason"), [
    ("0", "must be positive"), ("-1", "must be positive"), ("-0.5", "must be positive"),
    ("abc", "is not a number of tokens"), ("", "is not a number of tokens"),
    ("nan", "must be a finite number"), ("inf", "must be a finite number"),
    ("0.0000000001", "more than 9 decimals"), ("18446744074", "exceeds the largest amount"),
])
def test_bad_amounts_name_the_option_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        parse_tokens(text, "--amount")
    assert str(info.value).startswith("--amount")


def test_format_rao_is_exact() -> None:
    assert format_rao(1_500_000_000) == "1.5"
    assert format_rao(10**9) == "1"
    assert format_rao(1) == "0.000000001"
    assert format_rao(-2_000_000_001) == "-2.000000001"


# ---- integers, uids, weights ------------------------------------------------------------


def test_whole_numbers() -> None:
    assert parse_whole(" 7 ", "--netuid", 0, 65535) == 7
    for bad in ("-1", "1.0", "1e3", "65536", "", "x"):
        with pytest.raises(InputError, match=r"--netuid .*must be a whole number in \[0, 65535\]"):
            parse_whole(bad, "--netuid", 0, 65535)


def test_uids_and_weights_become_the_u16_vector_the_chain_stores() -> None:
    assert weight_vector("0, 1,2", "0.5,0.25,0") == ([0, 1, 2], [65535, 32768, 0])
    assert weight_vector("3", "7") == ([3], [65535])


@pytest.mark.parametrize(("uids", "weights", "reason"), [
    ("", "1", "--uids: give at least one entry"),
    ("0,,1", "1,1", "--uids '0,,1': entry 1 is empty"),
    ("x", "1", "--uids: 'x' is not a uid"),
    ("-1", "1", "--uids: '-1' is not a uid"),
    ("65536", "1", "--uids: '65536' is not a uid"),
    ("1,1", "1,1", "--uids: uid 1 appears more than once"),
    ("0", "abc", "--weights: 'abc' is not a number"),
    ("0", "-1", "--weights: '-1' must be a finite number >= 0"),
    ("0", "nan", "--weights: 'nan' must be a finite number >= 0"),
    ("0,1", "0,0", "--weights: at least one weight must be positive"),
    ("0,1", "1", "--uids has 2 entries but --weights has 1"),
])
def test_bad_weight_vectors(uids: str, weights: str, reason: str) -> None:
    with pytest.raises(InputError) as info:
        weight_vector(uids, weights)
    assert str(info.value).startswith(reason), str(info.value)


def test_uid_and_weight_parsers_alone() -> None:
    assert parse_uids("5,0") == [5, 0]
    assert parse_weights("1,0.5") == [1.0, 0.5]


def test_uid_lists_of_other_options_name_them() -> None:
    assert parse_uids("3, 1,3", "--cabal", distinct=False) == [3, 1, 3]
    for text, reason in (("-1", "--cabal: '-1' is not a uid (a whole number 0..65535)"),
                         ("1,99999", "--cabal: '99999' is not a uid"),
                         ("", "--cabal: give at least one entry, e.g. --cabal 0,1"),
                         ("1,,2", "--cabal '1,,2': entry 1 is empty")):
        with pytest.raises(InputError) as info:
            parse_uids(text, "--cabal", distinct=False)
        assert str(info.value).startswith(reason), str(info.value)
    with pytest.raises(InputError, match="--cabal: uid 3 appears more than once"):
        parse_uids("3,3", "--cabal")


# ---- validator run --cabal: the spec's rule ----------------------------------------------


@pytest.mark.parametrize(("behaviour", "cabal", "problem"), [
    ("cabal", [], "--behaviour cabal needs the miner uids to boost"),
    ("honest", [1], "only applies to --behaviour cabal, not honest"),
    ("weight-copier", [0, 2], "only applies to --behaviour cabal, not weight-copier"),
    ("cabal", [0, 65535], None),
    ("lazy", [], None),
])
def test_cabal_rule_is_the_specs(behaviour: str, cabal: list[int], problem: str | None
                                 ) -> None:
    assert cabal_problem(behaviour, cabal, "--behaviour") == problem
    # The spec words it for its own field, with the same rule behind it.
    spec = cabal_problem(behaviour, cabal)
    assert (spec is None) == (problem is None)
    if spec is not None:
        assert problem is not None and spec == problem.replace("--behaviour", "behaviour")
        with pytest.raises(ValidationError, match=re.escape(spec)):
            NeuronSpec.model_validate({"subnet": "s", "role": "validator",
                                       "behaviour": behaviour,
                                       "validator": {"cabal": cabal}})


# ---- miner serve: URL flags --------------------------------------------------------------


@pytest.mark.parametrize(("options", "reason"), [
    (dict(backend="openai", backend_url="nonsense"),
     "--backend-url: 'nonsense' must start with http:// or https://"),
    (dict(backend="vllm", backend_url="http://a b"),
     "--backend-url: 'http://a b' has spaces in it"),
    (dict(backend="openai", backend_url="http://u:secret@:1"),
     "--backend-url: 'http://u:***@:1' names no host"),
    (dict(behaviour="copycat", copy_from="ftp://x"),
     "--copy-from: 'ftp://x' must start with http:// or https://"),
    (dict(behaviour="copycat", copy_from="http://engine:99999"),
     "--copy-from: 'http://engine:99999' is not a URL"),
])
def test_miner_url_flags_follow_the_spec_url_rule(options: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError) as info:
        from_serve_flags(options)
    assert str(info.value).startswith(reason), str(info.value)


def test_good_miner_urls_pass() -> None:
    from_serve_flags(dict(backend="vllm", backend_url="http://127.0.0.1:8000/v1"))
    from_serve_flags(dict(behaviour="copycat", copy_from="https://engine.example"))


# ---- hyperparameters --------------------------------------------------------------------


def test_hyperparameters_take_the_chain_models_types() -> None:
    parsed = parse_hyperparameters(
        ["tempo=10", "commit_reveal_weights_enabled=TRUE", "kappa=0.25", "yuma3 = false"]
    )
    assert parsed == {"tempo": 10, "commit_reveal_weights_enabled": True, "kappa": 0.25,
                      "yuma3": False}
    assert type(parsed["tempo"]) is int and type(parsed["kappa"]) is float
    assert parse_hyperparameters(None) == {}


@pytest.mark.parametrize(("pairs", "reason"), [
    (["tempo"], "--param 'tempo': expected NAME=VALUE"),
    (["=3"], "--param '=3': expected NAME=VALUE"),
    (["tempo="], "--param 'tempo=': expected NAME=VALUE"),
    (["nonsense=1"], "--param nonsense: not a hyperparameter (known: activity_cutoff"),
    (["tempo=ten"], "--param tempo=ten: must be an integer"),
    (["tempo=1.5"], "--param tempo=1.5: must be an integer"),
    (["kappa=x"], "--param kappa=x: must be a number"),
    (["kappa=inf"], "--param kappa=inf: must be finite"),
    (["yuma3=1"], "--param yuma3=1: must be true or false"),
    (["tempo=1", "tempo=2"], "--param tempo: given more than once"),
])
def test_bad_hyperparameters(pairs: list[str], reason: str) -> None:
    with pytest.raises(InputError) as info:
        parse_hyperparameters(pairs)
    assert str(info.value).startswith(reason), str(info.value)


# ---- saved commits ----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "slhome"))
    return tmp_path / "slhome"


def test_a_saved_commit_hashes_like_the_chain_and_reloads(home: Path) -> None:
    made = commits.new_commit(GENESIS, HOTKEY, 3, [0, 1], [65535, 100], 7)
    assert made.commit_hash == weights_commit_hash(HOTKEY, 3, [0, 1], [65535, 100], made.salt, 7)
    assert len(bytes.fromhex(made.salt)) == commits.SALT_BYTES
    path = commits.save(made)
    assert path.parent == home / "commits"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert commits.saved_commits(GENESIS, HOTKEY, 3) == [made]
    included = made.included(block=40, reveal_epoch=5)
    commits.save(included)
    assert commits.saved_commits(GENESIS, HOTKEY, 3) == [included]
    assert included.reveal_params() == {"netuid": 3, "uids": [0, 1], "weights": [65535, 100],
                                        "salt": made.salt, "version_key": 7}
    commits.discard(included)
    assert commits.saved_commits(GENESIS, HOTKEY, 3) == []


def test_salts_differ_between_commits_of_the_same_weights() -> None:
    a = commits.new_commit(GENESIS, HOTKEY, 1, [0], [65535], 0)
    b = commits.new_commit(GENESIS, HOTKEY, 1, [0], [65535], 0)
    assert a.salt != b.salt and a.commit_hash != b.commit_hash


def test_commits_of_other_chains_subnets_or_hotkeys_are_not_picked(home: Path) -> None:
    mine = commits.new_commit(GENESIS, HOTKEY, 1, [0], [65535], 0)
    other_hotkey = Keypair.dev("bob").ss58_address
    for record in (mine, commits.new_commit("0x" + "cd" * 32, HOTKEY, 1, [0], [65535], 0),
                   commits.new_commit(GENESIS, HOTKEY, 2, [0], [65535], 0),
                   commits.new_commit(GENESIS, other_hotkey, 1, [0], [65535], 0)):
        commits.save(record)
    (home / "commits" / f"1-{HOTKEY}-garbage.json").write_text("{not json")
    assert commits.saved_commits(GENESIS, HOTKEY, 1) == [mine]
    assert commits.pick([mine], None, 1) == mine


def test_pick_refuses_none_and_ambiguity(home: Path) -> None:
    with pytest.raises(commits.CommitNotFound, match=r"no saved commit for this hotkey on "
                       r"subnet 4 .* run `subnetlab weights commit` first"):
        commits.pick([], None, 4)
    a = commits.new_commit(GENESIS, HOTKEY, 4, [0], [65535], 0)
    b = commits.new_commit(GENESIS, HOTKEY, 4, [1], [65535], 0)
    with pytest.raises(commits.CommitNotFound, match="2 saved commits on subnet 4"):
        commits.pick([a, b], None, 4)
    assert commits.pick([a, b], b.commit_hash.removeprefix("0x").upper(), 4) == b
    with pytest.raises(commits.CommitNotFound, match="no saved commit 0x00"):
        commits.pick([a, b], "0x00", 4)


@pytest.mark.parametrize(("epochs_run", "last_epoch_block", "tempo", "block", "expected"), [
    (5, 100, 10, 100, 5),   # the epoch ran when the block opened: the commit saw it
    (5, 100, 10, 107, 5),   # later in the same epoch
    (5, 100, 10, 99, 4),    # the block before the epoch
    (5, 100, 10, 90, 4),    # the block of the previous epoch
    (5, 100, 10, 89, 3),
    (7, 130, 10, 95, 3),    # epochs at 100, 110, 120 and 130 ran after block 95
])
def test_epoch_at_block(epochs_run: int, last_epoch_block: int, tempo: int, block: int,
                        expected: int) -> None:
    assert commits.epoch_at_block(epochs_run, last_epoch_block, tempo, block) == expected


def test_blocks_until_epoch() -> None:
    assert commits.blocks_until_epoch(3, 3, 120, 115, 10) == 0
    assert commits.blocks_until_epoch(4, 3, 120, 115, 10) == 5
    assert commits.blocks_until_epoch(6, 3, 120, 115, 10) == 25
