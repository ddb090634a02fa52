"""Fuzzing the running ledger: no input may produce a 5xx, or stop the chain.

1. schemathesis (its CLI, as a subprocess) against the ledger's own /openapi.json, with the
   `not_a_server_error` check and a bounded number of examples per operation. The SSE
   endpoint is excluded: it streams forever.
2. POST /v1/extrinsics declares the `Extrinsic` schema as its request body, so schemathesis
   sends real extrinsic-shaped bodies; but it cannot sign them, so they stop at the
   signature check. Hypothesis goes further: correctly signed extrinsics of every call with
   arbitrary params get past the signature and nonce checks into the dry run, and the ones
   admitted are executed in real blocks. Afterwards the ledger must still be producing
   blocks, and `ledger verify` must replay the whole chain.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subnetlab.chain.extrinsic import MalformedExtrinsic, sign_extrinsic
from subnetlab.chain.state import CALLS
from subnetlab.keys.keypair import Keypair
from tests.integration.chainclient import ChainClient, run_cli
from tests.integration.conftest import LedgerProcess, RedisServer

MAX_EXAMPLES = 30


def schemathesis_command() -> list[str]:
    """The schemathesis CLI of this interpreter's environment (4.x: the flags below)."""
    try:
        installed = version("schemathesis")
    except PackageNotFoundError:
        pytest.fail("schemathesis is not installed: pip install 'schemathesis>=4.32,<5' "
                    "(it is in the project's dev extras)")
    if int(installed.split(".")[0]) != 4:
        pytest.fail(f"schemathesis {installed}: this test uses the 4.x CLI "
                    "(--max-examples, --seed, --request-timeout in seconds); pin >=4.32,<5")
    found = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or shutil.which(
        "schemathesis")
    if found is None:
        pytest.fail(f"schemathesis {installed} is installed but its CLI is not on PATH")
    return [found]


def test_schemathesis_finds_no_server_error(
    module_ledger: LedgerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [
        *schemathesis_command(), "run", f"{module_ledger.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES),
        "--exclude-path", "/v1/stream/blocks",
        "--request-timeout", "40",
        "--seed", "20240601",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240,
                            cwd=tmp_path, check=False,
                            env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1"})
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    at = output.find("SUMMARY")
    summary = output[output.rfind("\n", 0, at) + 1:] if at >= 0 else output[-3000:]
    with capsys.disabled():  # the summary is part of the suite's output, pass or fail
        print(f"\n$ {' '.join(command)}\n{summary.rstrip()}")
    assert result.returncode == 0, f"schemathesis found server errors:\n{output[-6000:]}"
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None and int(tested.group(1)) >= 10, summary
    assert module_ledger.process is not None and module_ledger.process.poll() is None


# --- signed extrinsics with arbitrary params ---------------------------------------------

ALICE = Keypair.dev("alice")  # sudo, so sudo calls get past their permission check too
ADDRESSES = [Keypair.dev(n).ss58_address for n in ("alice", "fuzz-hotkey", "bob")]

INTS = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([-(2**63), 2**16 - 1, 2**16, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
                     2**64, 10**30]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*ADDRESSES, "0x" + "ab" * 32, "127.0.0.1", "::1", "0.0.0.0", "http", "",
                     "0x", "zz", "ab" * 2000]),
    st.text(max_size=12),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
HYPERPARAMETERS = ["tempo", "max_allowed_uids", "immunity_period", "kappa", "burn", "min_burn",
                   "max_burn", "weights_rate_limit", "commit_reveal_weights_enabled",
                   "max_weight_limit", "yuma3", "liquid_alpha", "alpha_low", "activity_cutoff",
                   "max_registrations_per_block", "nonsense"]


def near(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values (9 in 10), sometimes anything at all."""
    return st.sampled_from([True] * 9 + [False]).flatmap(lambda ok: valid if ok else JSON)


NETUID = near(st.sampled_from([1, 2, 0, 65535]))  # the module's subnets are 1 and maybe 2
ADDRESS = near(st.sampled_from(ADDRESSES))
AMOUNT = near(st.one_of(st.integers(1, 10**12), INTS))
UIDS = near(st.lists(st.integers(-1, 3), max_size=4))
HEX32 = near(st.sampled_from(["0x" + "ab" * 32, "cd" * 32, "0x" + "AB" * 32]))
HP = st.dictionaries(st.sampled_from(HYPERPARAMETERS), SCALARS, max_size=4)

CALL_PARAMS: dict[str, tuple[dict[str, st.SearchStrategy[Any]], dict[str, Any]]] = {
    "transfer": ({"dest": ADDRESS, "amount": AMOUNT}, {}),
    "faucet": ({}, {"pow_block": AMOUNT, "pow_nonce": AMOUNT}),
    "sudo_set_faucet": ({"enabled": near(st.booleans())},
                        {"amount": AMOUNT, "cooldown_blocks": AMOUNT, "block_budget": AMOUNT,
                         "interval_budget": AMOUNT, "interval_blocks": AMOUNT,
                         "pow_difficulty": near(st.integers(-1, 30)),
                         "pow_window_blocks": AMOUNT}),
    "create_subnet": ({}, {"hyperparameters": near(HP)}),
    "set_hyperparameters": ({"netuid": NETUID}, {n: SCALARS for n in HYPERPARAMETERS[:6]}),
    "sudo_set_hyperparameters": ({"netuid": NETUID}, {n: SCALARS for n in HYPERPARAMETERS[6:]}),
    "register": ({"netuid": NETUID, "hotkey": ADDRESS}, {}),
    "deregister": ({"netuid": NETUID, "hotkey": ADDRESS}, {}),
    "serve_axon": ({"netuid": NETUID, "ip": near(st.sampled_from(["127.0.0.1", "::1",
                                                                  "224.0.0.1",
                                                                  "169.254.169.254",
                                                                  "10.88.0.5"])),
                    "port": AMOUNT},
                   {"protocol": near(st.sampled_from(["http", "https", "ftp"])),
                    "hotkey": ADDRESS}),
    "add_stake": ({"hotkey": ADDRESS, "amount": AMOUNT}, {}),
    "remove_stake": ({"hotkey": ADDRESS, "amount": AMOUNT}, {}),
    "set_delegate_take": ({"hotkey": ADDRESS, "take": near(st.floats(-1, 1))}, {}),
    "set_weights": ({"netuid": NETUID, "uids": UIDS, "weights": UIDS},
                    {"version_key": AMOUNT}),
    "commit_weights": ({"netuid": NETUID, "commit_hash": HEX32}, {}),
    "reveal_weights": ({"netuid": NETUID, "uids": UIDS, "weights": UIDS,
                        "salt": near(st.one_of(st.sampled_from(["0a0b", "0x"]), UIDS))},
                       {"version_key": AMOUNT}),
    "commit_evidence": ({"netuid": NETUID, "epoch": AMOUNT, "digest": HEX32}, {}),
}
assert set(CALL_PARAMS) == set(CALLS), "a new call: give it a params strategy here"


def call_and_params() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    def for_call(call: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        required, optional = CALL_PARAMS[call]
        params = st.fixed_dictionaries(required, optional=optional)
        stray = st.dictionaries(st.sampled_from(["amout", "extra"]), SCALARS, max_size=1)
        mixed = st.one_of(params, params, params, st.builds(lambda a, b: {**a, **b}, params,
                                                             stray))
        return st.tuples(st.just(call), mixed)
    return st.sampled_from(sorted(CALL_PARAMS)).flatmap(for_call)


class Signer:
    """Tracks alice's next nonce: +1 for every extrinsic the door admits."""

    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self.nonce = chain.nonce(ALICE)
        self.admitted = 0
        self.codes: dict[str, int] = {}


@pytest.fixture(scope="module")
def signer(module_ledger: LedgerProcess) -> Iterator[Signer]:
    chain = ChainClient(module_ledger.url)
    # something for the calls to find: a subnet with alice's own hotkey registered
    netuid = chain.create_subnet(ALICE, {"tempo": 3, "weights_rate_limit": 0,
                                         "max_registrations_per_block": 4})
    assert netuid == 1
    for hotkey in ADDRESSES[:2]:  # alice is her own hotkey: her set_weights go all the way
        chain.call(ALICE, "register", {"netuid": netuid, "hotkey": hotkey})
    yield Signer(chain)
    chain.close()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(call_params=call_and_params())
def test_signed_extrinsics_with_arbitrary_params(
    signer: Signer, call_params: tuple[str, dict[str, Any]]
) -> None:
    call, params = call_params
    try:
        ext = sign_extrinsic(ALICE, call, params, signer.nonce, signer.chain.identity())
    except MalformedExtrinsic:
        return  # refused before signing (e.g. a float NaN); nothing to send
    response = signer.chain.submit(ext, wait=False)
    assert response.status_code < 500, f"{call} {params!r}: {response.status_code} " \
                                        f"{response.text[:500]}"
    body = response.json()
    if response.status_code == 202:
        signer.nonce += 1
        signer.admitted += 1
    else:
        assert 400 <= response.status_code < 500
        error = body["error"]
        assert isinstance(error["code"], str) and error["code"], body
        assert isinstance(error["message"], str) and error["message"], body
        signer.codes[error["code"]] = signer.codes.get(error["code"], 0) + 1


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: __import__("json").dumps(v).encode()),
    st.fixed_dictionaries({
        "call": st.one_of(st.sampled_from(sorted(CALLS)), SCALARS),
        "params": JSON, "signer": SCALARS, "nonce": SCALARS,
        "signature": st.one_of(SCALARS, st.just("00" * 64)), "chain_id": SCALARS,
    }).map(lambda v: __import__("json").dumps(v).encode()),
))
def test_arbitrary_bodies_are_refused_with_a_code(signer: Signer, body: bytes) -> None:
    for path in ("/v1/extrinsics", "/v1/extrinsics/batch"):
        response = signer.chain.http.post(path, content=body)
        assert response.status_code < 500, f"{path} {body[:200]!r}: {response.text[:300]}"
        if response.status_code >= 400:
            assert response.json()["error"]["code"], response.text


def test_chain_survives_the_fuzzing(
    signer: Signer, module_ledger: LedgerProcess, module_redis: RedisServer, tmp_path: Path
) -> None:
    """Everything admitted was executed in blocks; the chain goes on and replays cleanly."""
    chain = signer.chain
    chain.wait_blocks(3)
    assert chain.http.get("/readyz").status_code == 200
    assert chain.nonce(ALICE) == signer.nonce, "admitted extrinsics did not all reach a block"
    print(f"\nfuzz: {signer.admitted} admitted and executed; refusals by code: "
          f"{dict(sorted(signer.codes.items()))}")
    result = run_cli(["ledger", "verify", "--redis-url", module_redis.url],
                     env=module_ledger.env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^height \d+ OK$", result.stdout, re.M), result.stdout
