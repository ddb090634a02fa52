"""The ledger client's core without a ledger: decoding, errors, the nonce policy, and the
rule that keeps it the only client.

Why here: every caller of the ledger (CLI, bootstrap, bench, neurons, operator) relies on
these decisions; they are pure, so the fast tier checks them. The same client against a
real ledger process is tests/integration/test_ledger_client.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx
import pytest

from subnetlab.ledger.client import (
    NONCE_ATTEMPTS,
    LedgerClient,
    LedgerError,
    NoncePolicy,
    decode,
    expect,
    raise_if_failed,
    unreachable,
)

ROOT = Path(__file__).parents[2]
URL = "http://127.0.0.1:9"
SIGNER = "5Signer"


def answer(status: int, body: object | None = None, text: str | None = None) -> httpx.Response:
    """A real httpx response as the ledger (or something else) would send it."""
    if text is not None:
        return httpx.Response(status, text=text)
    return httpx.Response(status, json=body)


# ---- decoding and errors ---------------------------------------------------------------------


def test_a_refusal_becomes_one_ledger_error_with_the_ledgers_code_field_and_status() -> None:
    refusal = {"error": {"code": "unknown_subnet", "message": "netuid: no subnet 9",
                         "field": "netuid"}}
    with pytest.raises(LedgerError) as refused:
        decode(URL, "GET", "/x", answer(404, refusal))
    assert (refused.value.code, refused.value.field, refused.value.status) == (
        "unknown_subnet", "netuid", 404)
    assert str(refused.value) == "unknown_subnet: netuid: no subnet 9"


def test_an_answer_that_is_not_a_ledgers_says_so() -> None:
    with pytest.raises(LedgerError) as bad:
        decode(URL, "GET", "/x", answer(200, text="<html>hello</html>"))
    assert bad.value.code == "bad_response" and f"is {URL} a subnetlab ledger?" in str(bad.value)
    with pytest.raises(LedgerError) as bare:
        decode(URL, "GET", "/x", answer(502, {"detail": "bad gateway"}))
    assert bare.value.code == "http_502" and bare.value.status == 502
    assert decode(URL, "GET", "/x", answer(200, {"block": 3})) == {"block": 3}


def test_missing_or_mistyped_fields_are_a_bad_response_not_a_key_error() -> None:
    assert expect(URL, {"block": 1}, "/x", block=int) == {"block": 1}
    for body in ({}, {"block": "1"}, {"block": True}):
        with pytest.raises(LedgerError, match="without a valid 'block'"):
            expect(URL, body, "/x", block=int)


def test_a_failed_receipt_raises_with_the_chains_code() -> None:
    included = {"status": "included", "hash": "0x1"}
    assert raise_if_failed(included) is included
    with pytest.raises(LedgerError) as failed:
        raise_if_failed({"status": "failed", "code": "insufficient_balance",
                         "message": "amount: too much", "field": "amount"})
    assert (failed.value.code, failed.value.field) == ("insufficient_balance", "amount")


def test_no_answer_names_the_url_and_the_fix() -> None:
    refused = unreachable(URL, "GET", "/v1/chain", 5.0, httpx.ConnectError("refused"))
    assert f"cannot reach the ledger at {URL}" in str(refused)
    assert "SUBNETLAB_LEDGER" in str(refused)
    slow = unreachable(URL, "GET", "/v1/chain", 5.0, httpx.ReadTimeout("slow"))
    assert str(slow) == f"the ledger at {URL} did not answer GET /v1/chain within 5 s"


def test_a_url_that_is_not_http_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="must look like http://HOST:PORT"):
        LedgerClient("ftp://example")


# ---- the nonce policy ------------------------------------------------------------------------


def refusal(code: str) -> LedgerError:
    return LedgerError(code, "nonce: refused", "nonce", 400)


def test_a_signer_numbers_its_extrinsics_after_one_look_up() -> None:
    policy = NoncePolicy()
    assert policy.known(SIGNER) is None
    with pytest.raises(ValueError, match="read it from the chain"):
        policy.take(SIGNER)
    assert [policy.take(SIGNER, 7), policy.take(SIGNER), policy.take(SIGNER)] == [7, 8, 9]
    assert policy.known(SIGNER) == 10


def test_a_refused_extrinsic_gives_its_nonce_back() -> None:
    policy = NoncePolicy()
    nonce = policy.take(SIGNER, 3)
    policy.refused(SIGNER, nonce)
    assert policy.take(SIGNER) == 3


def test_nonce_refusals_resync_from_the_chain() -> None:
    policy = NoncePolicy()
    # stale: the chain's nonce does not count the signer's pending extrinsics
    policy.resynced(SIGNER, refused_nonce=5, code="stale_nonce", on_chain=4)
    assert policy.take(SIGNER) == 6
    policy.resynced(SIGNER, refused_nonce=5, code="stale_nonce", on_chain=9)
    assert policy.take(SIGNER) == 9
    # future: the counter ran ahead of the chain (a submission that never arrived)
    policy.resynced(SIGNER, refused_nonce=20, code="future_nonce", on_chain=11)
    assert policy.take(SIGNER) == 11
    policy.forget(SIGNER)
    assert policy.known(SIGNER) is None


def test_retries_are_bounded_and_only_for_what_a_retry_can_mend() -> None:
    policy = NoncePolicy()

    def after(code: str, attempt: int = 1, identity_read_again: bool = False) -> str | None:
        nonce = policy.take(SIGNER, 0)
        return policy.after_refusal(SIGNER, nonce, refusal(code), attempt, identity_read_again)

    assert after("stale_nonce") == "nonce"
    assert after("future_nonce", NONCE_ATTEMPTS - 1) == "nonce"
    assert after("stale_nonce", NONCE_ATTEMPTS) is None
    assert after("insufficient_balance") is None
    assert policy.known(SIGNER) == 0  # every refused nonce was given back
    assert after("wrong_genesis", 2, identity_read_again=True) is None
    assert after("wrong_genesis") == "identity"
    assert policy.known(SIGNER) is None  # a new chain: its nonce is read again


# ---- one client: no other code speaks to the ledger's routes --------------------------------

LEDGER_ROUTE = re.compile(
    r"^/v1/(chain|faucet|accounts|subnets|evidence|blocks|stream|extrinsics)\b")
LEDGER_PACKAGE = ROOT / "services" / "subnetlab" / "ledger"
CLIENT = LEDGER_PACKAGE / "client.py"
SERVER = {LEDGER_PACKAGE / "routes.py", LEDGER_PACKAGE / "app.py"}
"""The ledger's own HTTP layer, which declares the routes the client calls."""


def route_strings(path: Path) -> list[str]:
    """Ledger route paths written in ``path``'s code (docstrings and messages aside)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and LEDGER_ROUTE.match(node.value)]


def test_only_the_client_module_names_the_ledgers_routes() -> None:
    """services/: every HTTP call to the ledger goes through ledger/client.py (the server's
    own routes aside), so there is one request, decoding, error and nonce policy."""
    found = [hit for path in sorted((ROOT / "services").rglob("*.py"))
             if path != CLIENT and path not in SERVER for hit in route_strings(path)]
    assert found == []
    assert route_strings(CLIENT), "the rule must see the client's own routes"
