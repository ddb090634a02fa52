"""Refused extrinsics: a clear 4xx with a machine-readable code, and no trace in the chain.

For every case the test records the state it could touch (the sender's balance, nonce and
stake positions, the hotkeys' accounts, the subnet's metagraph and hyperparameters) before
and after, waits for two more blocks, and checks that no block, receipt or receipt index
knows the refused extrinsic.

The module's subnet has a huge tempo (no epoch ever runs, so no payout moves balances or
stakes under the test), a weights rate limit of 1000 blocks, and room for two uids, both
taken and immune for 60000 blocks: the subnet is full and every neuron is immune.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis

from subnetlab.chain.extrinsic import ChainIdentity, Extrinsic, sign_extrinsic
from subnetlab.chain.model import DEV_FEE
from subnetlab.keys.keypair import Keypair
from tests.integration.chainclient import REDIS_PREFIX, TOKEN, ChainClient, address
from tests.integration.conftest import LedgerProcess, RedisServer

ALICE, BOB, CHARLIE = (Keypair.dev(n) for n in ("alice", "bob", "charlie"))
STAKE = 500 * TOKEN


@dataclass
class World:
    ledger: LedgerProcess
    chain: ChainClient
    redis: redis.Redis
    netuid: int
    hk0: Keypair  # uid 0: set weights once already
    hk1: Keypair  # uid 1: never set weights
    watched: list[str] = field(default_factory=list)

    def observe(self, *extra: Keypair | str) -> dict[str, Any]:
        """Everything a refused extrinsic could have touched (pending emission aside)."""
        accounts = {a: self.chain.account(a) for a in [*self.watched, *map(address, extra)]}
        subnet = self.chain.subnet(self.netuid)
        subnet.pop("pending_emission")  # accrues every block, by design
        return {"accounts": accounts, "subnet": subnet,
                "metagraph": self.chain.metagraph(self.netuid)}


@pytest.fixture(scope="module")
def world(module_ledger: LedgerProcess, module_redis: RedisServer) -> Iterator[World]:
    chain = ChainClient(module_ledger.url)
    netuid = chain.create_subnet(ALICE, {
        "tempo": 10_000, "weights_rate_limit": 1_000, "max_allowed_uids": 2,
        "immunity_period": 60_000, "max_registrations_per_block": 8,
        "adjustment_interval": 65_535,
    })
    hk0, hk1 = Keypair.dev("rob-hk0"), Keypair.dev("rob-hk1")
    for hotkey in (hk0, hk1):
        chain.call(ALICE, "register", {"netuid": netuid, "hotkey": hotkey.ss58_address})
    chain.call(ALICE, "add_stake", {"hotkey": hk0.ss58_address, "amount": STAKE})
    chain.call(hk0, "set_weights", {"netuid": netuid, "uids": [0, 1], "weights": [1, 1]})
    client = redis.Redis.from_url(module_redis.url)
    watched = [a.ss58_address for a in (ALICE, BOB, hk0, hk1)]
    yield World(module_ledger, chain, client, netuid, hk0, hk1, watched)
    chain.close()
    client.close()


@dataclass(frozen=True)
class Case:
    """What to send, and the refusal expected."""

    body: bytes
    ext: Extrinsic | None  # the extrinsic as parsed, when the body is one
    status: int
    code: str
    says: tuple[str, ...]  # fragments the message must contain (the reason)
    observe: tuple[str, ...] = ()  # more accounts to watch


def _signed(ext: Extrinsic) -> bytes:
    return ext.to_json().encode()


def _tampered(w: World) -> Case:
    ext = w.chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 5})
    wire = json.loads(ext.to_json())
    wire["params"]["amount"] = 5_000_000  # changed after signing
    forged = Extrinsic.from_dict(wire)
    return Case(json.dumps(wire).encode(), forged, 401, "bad_signature",
                ("bad signature", ALICE.ss58_address))


def _wrong_signer(w: World) -> Case:
    by_bob = sign_extrinsic(BOB, "transfer", {"dest": BOB.ss58_address, "amount": 5},
                            w.chain.nonce(ALICE), w.chain.identity())
    wire = {**json.loads(by_bob.to_json()), "signer": ALICE.ss58_address}
    return Case(json.dumps(wire).encode(), Extrinsic.from_dict(wire), 401, "bad_signature",
                ("bad signature", ALICE.ss58_address))


def _bad_signer_address(w: World) -> Case:
    wire = {**json.loads(w.chain.sign(ALICE, "faucet", {}).to_json()), "signer": "5NotAnAddress"}
    return Case(json.dumps(wire).encode(), Extrinsic.from_dict(wire), 400, "bad_signer",
                ("bad signer",))


def _wrong_chain(w: World) -> Case:
    ext = sign_extrinsic(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 5},
                         w.chain.nonce(ALICE),
                         ChainIdentity("some-other-chain", w.chain.identity().genesis_hash))
    return Case(_signed(ext), ext, 400, "wrong_chain", ("some-other-chain", "subnetlab-dev"))


OTHER_GENESIS = "0x" + "ab" * 32


def _wrong_genesis(w: World) -> Case:
    """Signed for this chain id but another genesis (the same chain id started again):
    refused with its own code, not taken as a fresh extrinsic of this chain."""
    ext = sign_extrinsic(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 5},
                         w.chain.nonce(ALICE), ChainIdentity("subnetlab-dev", OTHER_GENESIS))
    return Case(_signed(ext), ext, 400, "wrong_genesis",
                (OTHER_GENESIS, w.chain.identity().genesis_hash, "GET /v1/chain"))


def _nonce_gap(w: World) -> Case:
    nonce = w.chain.nonce(ALICE)
    ext = w.chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 5}, nonce + 3)
    return Case(_signed(ext), ext, 409, "future_nonce", ("gap", f"next is {nonce}"))


def _oversize(w: World) -> Case:
    ext = w.chain.sign(ALICE, "transfer",
                       {"dest": BOB.ss58_address, "amount": 5, "memo": "x" * 70_000})
    body = _signed(ext)
    assert len(body) > 64 * 1024
    return Case(body, ext, 413, "too_large", (str(len(body)), "65536"))


def _malformed_json(w: World) -> Case:
    return Case(b'{"call": "transfer", "params": {', None, 400, "malformed_extrinsic",
                ("Invalid JSON",))


def _not_an_object(w: World) -> Case:
    return Case(b"[1, 2, 3]", None, 400, "malformed_extrinsic", ("object",))


def _missing_fields(w: World) -> Case:
    return Case(b'{"call": "transfer"}', None, 400, "malformed_extrinsic",
                ("signer", "nonce", "signature"))


def _unknown_call(w: World) -> Case:
    ext = w.chain.sign(ALICE, "mint_myself_tokens", {"amount": 10**12})
    return Case(_signed(ext), ext, 400, "unknown_call", ("mint_myself_tokens", "transfer"))


def _weights_to_unregistered_uids(w: World) -> Case:
    ext = w.chain.sign(w.hk1, "set_weights", {"netuid": w.netuid, "uids": [0, 7],
                                              "weights": [1, 1]})
    return Case(_signed(ext), ext, 400, "invalid_uid", ("uids", "7"))


def _weights_from_unregistered_hotkey(w: World) -> Case:
    stranger = Keypair.dev("rob-unregistered-hotkey")
    ext = w.chain.sign(stranger, "set_weights", {"netuid": w.netuid, "uids": [0],
                                                 "weights": [1]})
    return Case(_signed(ext), ext, 400, "not_registered", (stranger.ss58_address,),
                (stranger.ss58_address,))


def _weights_too_fast(w: World) -> Case:
    ext = w.chain.sign(w.hk0, "set_weights", {"netuid": w.netuid, "uids": [1], "weights": [5]})
    return Case(_signed(ext), ext, 429, "rate_limited", ("weights_rate_limit",))


def _register_full_and_immune(w: World) -> Case:
    newcomer = Keypair.dev("rob-newcomer")
    ext = w.chain.sign(BOB, "register", {"netuid": w.netuid, "hotkey": newcomer.ss58_address})
    return Case(_signed(ext), ext, 400, "subnet_full", ("full", "immunity"),
                (newcomer.ss58_address,))


def _stake_more_than_balance(w: World) -> Case:
    balance = w.chain.balance(ALICE)
    ext = w.chain.sign(ALICE, "add_stake", {"hotkey": w.hk0.ss58_address, "amount": balance + 1})
    return Case(_signed(ext), ext, 400, "insufficient_balance",
                ("amount", str(balance + 1), "free balance"))


def _unstake_more_than_staked(w: World) -> Case:
    ext = w.chain.sign(ALICE, "remove_stake", {"hotkey": w.hk0.ss58_address,
                                               "amount": STAKE + 1})
    return Case(_signed(ext), ext, 400, "insufficient_stake", ("amount", str(STAKE + 1)))


def _never_seen_account(w: World) -> Case:
    stranger = Keypair.generate()
    ext = sign_extrinsic(stranger, "transfer", {"dest": BOB.ss58_address, "amount": 1}, 0,
                         w.chain.identity())
    return Case(_signed(ext), ext, 400, "insufficient_balance",
                ("fee", f"transaction fee of {DEV_FEE} rao", "free balance of 0"),
                (stranger.ss58_address,))


def _amount_plus_fee_more_than_balance(w: World) -> Case:
    balance = w.chain.balance(ALICE)
    amount = balance - DEV_FEE + 1  # affordable without the fee, not with it
    ext = w.chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": amount})
    return Case(_signed(ext), ext, 400, "insufficient_balance",
                ("amount", str(amount), f"after the transaction fee of {DEV_FEE} rao"))


def _never_seen_account_sudo(w: World) -> Case:
    stranger = Keypair.generate()
    ext = sign_extrinsic(stranger, "sudo_set_faucet", {"enabled": False}, 0,
                         w.chain.identity())
    return Case(_signed(ext), ext, 403, "not_sudo", ("sudo",), (stranger.ss58_address,))


def _unknown_param(w: World) -> Case:
    ext = w.chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 5, "amout": 6})
    return Case(_signed(ext), ext, 400, "invalid_param", ("amout", "unknown parameter"))


CASES: dict[str, Callable[[World], Case]] = {
    "bad_signature_tampered_params": _tampered,
    "wrong_signer": _wrong_signer,
    "bad_signer_address": _bad_signer_address,
    "wrong_chain": _wrong_chain,
    "wrong_genesis": _wrong_genesis,
    "nonce_gap": _nonce_gap,
    "oversize_body": _oversize,
    "malformed_json": _malformed_json,
    "json_not_an_object": _not_an_object,
    "missing_fields": _missing_fields,
    "unknown_call": _unknown_call,
    "unknown_param": _unknown_param,
    "weights_to_unregistered_uids": _weights_to_unregistered_uids,
    "weights_from_unregistered_hotkey": _weights_from_unregistered_hotkey,
    "weights_faster_than_rate_limit": _weights_too_fast,
    "register_on_full_immune_subnet": _register_full_and_immune,
    "stake_more_than_balance": _stake_more_than_balance,
    "unstake_more_than_staked": _unstake_more_than_staked,
    "never_seen_account": _never_seen_account,
    "amount_plus_fee_more_than_balance": _amount_plus_fee_more_than_balance,
    "never_seen_account_sudo_call": _never_seen_account_sudo,
}


def assert_no_trace(w: World, ext: Extrinsic | None, first_block: int) -> None:
    """No stored block, receipt or receipt index knows the extrinsic."""
    if ext is None:
        return
    last = w.chain.height()
    digest = ext.hash
    unknown = w.chain.receipt(digest)
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"]["code"] == "unknown_extrinsic"
    assert w.chain.blocks_containing(digest, first_block, last) == []
    assert w.redis.hget(f"{REDIS_PREFIX}:receipts", digest) is None


def assert_refused(w: World, case: Case, response_status: int, body: dict[str, Any]) -> None:
    assert response_status == case.status, body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == case.code, error
    for fragment in case.says:
        assert fragment in error["message"], f"{fragment!r} not in {error['message']!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_refused_with_code_and_no_state_change(world: World, name: str) -> None:
    case = CASES[name](world)
    before = world.observe(*case.observe)
    first_block = world.chain.height() + 1
    refused_before = world.chain.metrics().get(
        ("subnetlab_extrinsics_refused_total", frozenset({("code", case.code)})), 0.0)

    response = world.chain.post(case.body)
    assert_refused(world, case, response.status_code, response.json())

    world.chain.wait_blocks(2)  # had it been queued, it would be in a block by now
    assert world.observe(*case.observe) == before
    assert_no_trace(world, case.ext, first_block)
    refused_after = world.chain.metrics()[
        ("subnetlab_extrinsics_refused_total", frozenset({("code", case.code)}))]
    assert refused_after == refused_before + 1


def test_replayed_extrinsic_is_refused(world: World) -> None:
    """The same signed bytes again after inclusion: already_known; re-signed: stale_nonce."""
    chain = world.chain
    ext = chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 3})
    pending = chain.submit(ext, wait=False)
    assert pending.status_code == 202, pending.text
    again = chain.submit(ext, wait=False)  # pending or just included: the same bytes
    assert again.status_code == 409, again.text
    assert (again.json()["error"]["code"], again.json()["error"]["field"]) == (
        "already_known", "signature")
    deadline = time.monotonic() + 20
    while (first := chain.receipt(ext.hash)).json()["status"] == "pending":
        assert time.monotonic() < deadline, "never included"
        time.sleep(0.05)
    assert first.status_code == 200 and first.json()["status"] == "included", first.text
    included_in = first.json()["block"]

    before = world.observe()
    replay = chain.post(ext.to_json(), wait=True)
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"]["code"] in {"already_known", "stale_nonce"}
    assert replay.json()["error"]["field"] == {"already_known": "signature",
                                               "stale_nonce": "nonce"}[
        replay.json()["error"]["code"]]
    assert ext.hash in replay.json()["error"]["message"] or "nonce" in replay.json()["error"][
        "message"]
    resigned = chain.sign(ALICE, "transfer", {"dest": BOB.ss58_address, "amount": 3}, ext.nonce)
    stale = chain.submit(resigned, wait=True)
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "stale_nonce"
    assert f"nonce {ext.nonce}" in stale.json()["error"]["message"]

    chain.wait_blocks(2)
    assert world.observe() == before
    # the original is in exactly one block; the re-signed one in none
    assert chain.blocks_containing(ext.hash, included_in - 2, chain.height()) == [included_in]
    assert_no_trace(world, resigned, included_in)


def test_batch_reports_each_refusal_and_admits_only_the_good(world: World) -> None:
    chain = world.chain
    nonce = chain.nonce(BOB)
    good = chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 11}, nonce)
    gap = chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 12}, nonce + 5)
    forged = {**json.loads(chain.sign(BOB, "faucet", {}, nonce + 1).to_json()),
              "signer": ALICE.ss58_address}
    items = [json.loads(good.to_json()), json.loads(gap.to_json()), forged, 17]
    response = chain.http.post("/v1/extrinsics/batch", json={"extrinsics": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0] == {"hash": good.hash, "status": "pending"}
    assert [r["error"]["code"] for r in results[1:]] == [
        "future_nonce", "bad_signature", "malformed_extrinsic"]
    chain.wait_blocks(2)
    assert chain.receipt(good.hash).json()["status"] == "included"
    assert chain.nonce(BOB) == nonce + 1
    assert chain.receipt(gap.hash).status_code == 404


def test_batch_item_over_the_size_limit_is_refused_alone(world: World) -> None:
    """A batch item is held to the single-extrinsic limit (64 KiB), measured as stored."""
    chain = world.chain
    nonce = chain.nonce(BOB)
    first_block = chain.height() + 1
    good = chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 13}, nonce)
    big = chain.sign(BOB, "transfer", {"dest": ALICE.ss58_address, "amount": 14,
                                       "memo": "x" * 70_000}, nonce + 1)
    items = [json.loads(good.to_json()), json.loads(big.to_json())]
    response = chain.http.post("/v1/extrinsics/batch", json={"extrinsics": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0] == {"hash": good.hash, "status": "pending"}
    error = results[1]["error"]
    assert error["code"] == "too_large", error  # refused for its size, before its params
    assert error["field"] == "body", error
    assert "65536" in error["message"] and str(len(big.to_json())) in error["message"], error
    chain.wait_blocks(2)
    assert chain.receipt(good.hash).json()["status"] == "included"
    assert chain.nonce(BOB) == nonce + 1
    assert_no_trace(world, big, first_block)


@pytest.mark.parametrize("body", [b"[1", b'{"extrinsics": 5}', b"\xff\xfe"],
                         ids=["truncated", "not_a_list", "not_utf8"])
def test_malformed_batch(world: World, body: bytes) -> None:
    response = world.chain.http.post("/v1/extrinsics/batch", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_batch"


def test_deeply_nested_batch_is_a_4xx(world: World) -> None:
    outcomes: dict[int, str] = {}
    for depth in (1_000, 5_000):  # 2 KB and 10 KB bodies
        body = b'{"extrinsics": ' + b"[" * depth + b"]" * depth + b"}"
        try:
            response = world.chain.http.post("/v1/extrinsics/batch", content=body)
        except httpx.TransportError as exc:  # seen at depth 5000: the connection is dropped
            outcomes[depth] = f"connection dropped: {exc!r}"
            continue
        code = response.json()["error"]["code"] if response.status_code < 500 else None
        outcomes[depth] = f"{response.status_code} {code or response.text[:80]}"
    assert world.chain.http.get("/readyz").status_code == 200  # the ledger survives either way
    assert all(o == "400 malformed_batch" for o in outcomes.values()), outcomes
