"""The ledger's edge: refusals carry codes, and one map turns a code into its status."""

from __future__ import annotations

import ast
from pathlib import Path

from subnetlab.chain.errors import ErrorCode
from subnetlab.ledger import node
from subnetlab.ledger.edge import status_of
from subnetlab.ledger.node import Refused


def test_each_kind_of_refusal_has_its_status() -> None:
    assert [status_of(code) for code in ("not_sudo", "not_owner")] == [403, 403]
    assert [status_of(code) for code in ("rate_limited", "too_many_registrations",
                                         "faucet_budget_exhausted")] == [429, 429, 429]
    assert [status_of(code) for code in ("stale_nonce", "future_nonce", "already_known",
                                         "already_registered", "faucet_pow_expired")] == [409] * 5
    assert status_of("bad_signature") == 401
    assert status_of("too_large") == 413
    assert status_of("not_ready") == 503
    assert [status_of(code) for code in ("malformed_extrinsic", "wrong_chain", "too_deep",
                                         "malformed_batch", "insufficient_balance")] == [400] * 5


def test_every_chain_error_is_a_client_error() -> None:
    assert {code: status_of(code) for code in ErrorCode
            if not 400 <= status_of(code) < 500} == {}


def test_the_node_refuses_with_codes_and_knows_no_http_status() -> None:
    refusal = Refused("too_large", "extrinsic is 70000 bytes", "body")
    assert refusal.to_dict() == {"error": {"code": "too_large",
                                           "message": "extrinsic is 70000 bytes",
                                           "field": "body"}}
    assert not hasattr(refusal, "status")
    tree = ast.parse(Path(node.__file__).read_text())
    numbers = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, int) and not isinstance(n.value, bool)}
    assert numbers & {400, 401, 403, 404, 409, 413, 429, 503} == set()
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                for alias in n.names} | {n.module for n in ast.walk(tree)
                                         if isinstance(n, ast.ImportFrom)}
    assert not {name for name in imported if name and ("fastapi" in name or "starlette" in name)}
