"""The one client of the ledger's HTTP API: a sync face for the CLI, scripts, bench and
bootstrap, an async face for the neurons and the operator.

Both faces share one core, so the ledger is spoken to one way everywhere: the routes
(``*_route`` functions), the decoding of answers (:func:`decode`, :func:`expect`), the
errors, and one :class:`NoncePolicy` for every signer. Each face is a thin transport over
one reused ``httpx`` client (keep-alive: a ``submit`` is three or four requests). Failures
come out as two exception types a caller can act on:

- :class:`LedgerError`: the ledger answered and said no: an extrinsic refused at the door
  (4xx) or included as failed, an unknown subnet, ... ``code`` is the ledger's stable
  error code (``insufficient_balance``, ``stale_nonce``, ...), ``field`` the parameter at
  fault.
- :class:`LedgerUnreachable`: no answer (connection refused, DNS, timeout); the message
  names the URL, because the usual fix is "start the ledger" or "fix --ledger".

Amounts on the wire are integer rao (1 token = 10**9 rao); :func:`parse_tokens` and
:func:`format_rao` convert exactly, with no float in between.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from subnetlab.chain.extrinsic import ChainIdentity, Extrinsic, chain_identity, sign_extrinsic
from subnetlab.chain.units import TOKEN
from subnetlab.keys.keypair import Keypair

__all__ = [
    "DEFAULT_LEDGER_URL",
    "LEDGER_ENV",
    "MAX_RAO",
    "AsyncLedgerClient",
    "LedgerClient",
    "LedgerClientError",
    "LedgerError",
    "LedgerUnreachable",
    "NoncePolicy",
    "default_ledger_url",
    "format_rao",
    "parse_tokens",
]

Json = dict[str, Any]

DEFAULT_LEDGER_URL = "http://127.0.0.1:9944"
LEDGER_ENV = "SUBNETLAB_LEDGER"
MAX_RAO = 2**64 - 1
"""Largest amount accepted from a user: balances are u64 rao on the real chain."""
TOKEN_DECIMALS = 9

DEFAULT_TIMEOUT_S = 45.0
"""Read timeout: above the ledger's own 30 s wait for inclusion, so that wait can finish."""
CONNECT_TIMEOUT_S = 5.0
INCLUSION_TIMEOUT_S = 120.0
"""How long :meth:`LedgerClient.submit` waits for a block before giving up."""
NONCE_ATTEMPTS = 8
"""Tries per submission before a nonce refusal is given up (see :class:`NoncePolicy`)."""


class LedgerClientError(Exception):
    """Base of the client's errors: catch this to handle every ledger failure at once."""


class LedgerError(LedgerClientError):
    """The ledger refused something; ``code`` is its machine-readable error code."""

    def __init__(
        self, code: str, message: str, field: str | None = None, status: int | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.field = field
        self.status = status
        super().__init__(self._render())

    def _render(self) -> str:
        # Chain errors already start with "field: "; API validation errors do not.
        if self.field and not self.message.startswith(f"{self.field}:"):
            return f"{self.code}: {self.field}: {self.message}"
        return f"{self.code}: {self.message}"


class LedgerUnreachable(LedgerClientError):  # noqa: N818 -- named by the CLI contract
    """No usable answer from the ledger at all; the message names the URL."""


# ---- amounts ----------------------------------------------------------------------------


def parse_tokens(text: str, what: str = "amount") -> int:
    """Exact rao of a decimal token amount (``"1.5"`` -> 1_500_000_000).

    Refused with ``ValueError`` (message starts with ``what``): anything that is not a
    plain decimal number, NaN and infinities, negatives and zero, more precision than one
    rao (9 decimals), and amounts above :data:`MAX_RAO`. Decimal, not float: ``0.1`` token
    must be exactly 100_000_000 rao.
    """
    raw = text.strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a number of tokens (e.g. 1.5)") from None
    if not value.is_finite():
        raise ValueError(f"{what} {text!r} must be a finite number of tokens")
    if value <= 0:
        raise ValueError(f"{what} {text!r} must be positive")
    if value > Decimal(MAX_RAO).scaleb(-TOKEN_DECIMALS):
        largest = format_rao(MAX_RAO)
        raise ValueError(f"{what} {text!r} exceeds the largest amount, {largest} tokens")
    rao = value.scaleb(TOKEN_DECIMALS)
    if rao != rao.to_integral_value():
        raise ValueError(
            f"{what} {text!r} has more than {TOKEN_DECIMALS} decimals (1 rao = 1e-9 token)"
        )
    return int(rao)


def format_rao(rao: int) -> str:
    """Tokens as an exact decimal string: 1_500_000_000 -> ``"1.5"``, 10**9 -> ``"1"``."""
    sign = "-" if rao < 0 else ""
    whole, frac = divmod(abs(rao), TOKEN)
    return f"{sign}{whole}" + (f".{frac:09d}".rstrip("0") if frac else "")


def default_ledger_url() -> str:
    """``$SUBNETLAB_LEDGER``, else the local default ``http://127.0.0.1:9944``."""
    return os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER_URL


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"ledger URL {url!r} must look like http://HOST:PORT")
    return url.rstrip("/")


# ---- the core: routes, decoding, nonces ----------------------------------------------------
# Pure functions and one state object, shared by both faces: the faces only move bytes.


def account_route(address: str) -> str:
    """``/v1/accounts/{ss58}`` (quoted: an address is user input)."""
    return f"/v1/accounts/{quote(address, safe='')}"


def subnet_route(netuid: int, tail: str = "") -> str:
    """``/v1/subnets/{netuid}`` and its sub-resources (``/metagraph``, ``/weights``, ...)."""
    return f"/v1/subnets/{int(netuid)}{tail}"


def receipt_route(extrinsic_hash: str) -> str:
    """``/v1/extrinsics/{hash}``: pending, included or failed (with code)."""
    return f"/v1/extrinsics/{quote(extrinsic_hash, safe='')}"


CHAIN_ROUTE = "/v1/chain"
SUBNETS_ROUTE = "/v1/subnets"
FAUCET_ROUTE = "/v1/faucet"
LATEST_BLOCK_ROUTE = "/v1/blocks/latest"
EXTRINSICS_ROUTE = "/v1/extrinsics"
BATCH_ROUTE = "/v1/extrinsics/batch"
BLOCK_STREAM_ROUTE = "/v1/stream/blocks"
METRICS_ROUTE = "/metrics"


def block_route(number: int) -> str:
    """``/v1/blocks/{n}``: a header plus its extrinsics and receipts."""
    return f"/v1/blocks/{int(number)}"


def evidence_route(netuid: int) -> str:
    """``/v1/evidence/{netuid}``: committed evidence digests."""
    return f"/v1/evidence/{int(netuid)}"


def filters(**values: Any) -> dict[str, Any] | None:
    """Query parameters without the ones left out (None), or None when none is left."""
    kept = {name: value for name, value in values.items() if value is not None}
    return kept or None


def unreachable(url: str, method: str, path: str, timeout: float | None,
                exc: httpx.HTTPError) -> LedgerUnreachable:
    """The one sentence for "no answer": names the URL, because the fix is usually there."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return LedgerUnreachable(
            f"cannot reach the ledger at {url}: {_reason(exc)} "
            "(is `subnetlab ledger serve` running? set --ledger or SUBNETLAB_LEDGER)"
        )
    if isinstance(exc, httpx.TimeoutException):
        limit = "" if timeout is None else f" within {timeout:g} s"
        return LedgerUnreachable(f"the ledger at {url} did not answer {method} {path}{limit}")
    return LedgerUnreachable(f"cannot talk to the ledger at {url}: {_reason(exc)}")


def decode(url: str, method: str, path: str, response: httpx.Response) -> Json:
    """The JSON object an answer carries, or :class:`LedgerError` with the ledger's code.

    Every ledger answer, success or refusal, is a JSON object; anything else means the URL
    does not point at a subnetlab ledger, which is said in the error.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LedgerError(
            "bad_response",
            f"{method} {path} answered HTTP {response.status_code} without a JSON object; "
            f"is {url} a subnetlab ledger?",
            status=response.status_code,
        )
    if response.status_code >= 400:
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        raise LedgerError(
            str(error.get("code") or f"http_{response.status_code}"),
            str(error.get("message") or response.reason_phrase),
            error.get("field") if isinstance(error.get("field"), str) else None,
            response.status_code,
        )
    return body


def expect(url: str, body: Json, path: str, **fields: type | tuple[type, ...]) -> Json:
    """``body`` if it has these fields with these types, else LedgerError bad_response.

    Callers index these fields directly; a server that is not a subnetlab ledger (or
    another version of it) must fail with a sentence, not a KeyError traceback.
    """
    for name, kind in fields.items():
        value = body.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise LedgerError(
                "bad_response",
                f"GET {path} answered without a valid {name!r}; is {url} a subnetlab ledger?",
            )
    return body


def identity_of(url: str, info: Json) -> ChainIdentity:
    """The chain identity in a ``GET /v1/chain`` answer, checked."""
    expect(url, info, CHAIN_ROUTE, chain_id=str, genesis_hash=str, block=int,
           block_time=(int, float))
    try:
        return chain_identity(info)
    except ValueError as exc:
        raise LedgerError("bad_response", f"{exc}; is {url} a subnetlab ledger?") from None


def raise_if_failed(receipt: Json) -> Json:
    """``receipt`` if its extrinsic succeeded; LedgerError with the chain's code if not."""
    if receipt.get("status") == "failed":
        field = receipt.get("field")
        raise LedgerError(
            str(receipt.get("code") or "failed"),
            str(receipt.get("message") or "the extrinsic failed in its block"),
            field if isinstance(field, str) else None,
        )
    return receipt


def encode_batch(extrinsics: list[Extrinsic]) -> bytes:
    """The body of ``POST /v1/extrinsics/batch``: encoded once, so a bench can prepare its
    load before the clock starts and send the bytes as they are."""
    return ('{"extrinsics":[' + ",".join(e.model_dump_json() for e in extrinsics)
            + "]}").encode()


RESYNC_CODES = frozenset({"stale_nonce", "future_nonce"})


class NoncePolicy:
    """The one nonce policy of every signer: a local counter, seeded from the chain.

    A signer numbers its extrinsics itself after one look-up, so a burst of submissions
    (a bootstrap batch, a neuron's weights and evidence) costs no extra request each. A
    refusal that says the counter is wrong re-syncs it from the chain: ``future_nonce``
    takes the chain's nonce; ``stale_nonce`` takes the larger of the chain's nonce and the
    refused one plus one (the chain's nonce does not count the signer's extrinsics still
    waiting for a block). ``wrong_genesis`` (the ledger started a new chain) re-reads the
    chain's identity once. At most ``attempts`` tries per submission.
    """

    def __init__(self, attempts: int = NONCE_ATTEMPTS) -> None:
        self.attempts = attempts
        self._next: dict[str, int] = {}

    def known(self, signer: str) -> int | None:
        """The signer's next nonce, or None when it must be read from the chain first."""
        return self._next.get(signer)

    def take(self, signer: str, on_chain: int | None = None) -> int:
        """The nonce to sign with now, counted as used (seeded with ``on_chain`` if new)."""
        if signer not in self._next:
            if on_chain is None:
                raise ValueError(f"no nonce known for {signer}: read it from the chain")
            self._next[signer] = on_chain
        nonce = self._next[signer]
        self._next[signer] = nonce + 1
        return nonce

    def forget(self, signer: str | None = None) -> None:
        """Drop the counter of one signer (or all): the next submission reads the chain."""
        if signer is None:
            self._next.clear()
        else:
            self._next.pop(signer, None)

    def refused(self, signer: str, nonce: int) -> None:
        """The extrinsic signed with ``nonce`` was refused at the door: not consumed."""
        if self._next.get(signer) == nonce + 1:
            self._next[signer] = nonce

    def resynced(self, signer: str, refused_nonce: int, code: str, on_chain: int) -> None:
        """Set the counter after a nonce refusal, from the chain's current nonce."""
        self._next[signer] = max(on_chain, refused_nonce + 1) if code == "stale_nonce" \
            else on_chain

    def after_refusal(self, signer: str, nonce: int, error: LedgerError, attempt: int,
                      identity_read_again: bool) -> str | None:
        """What to do after the extrinsic signed with ``nonce`` was refused at the door on
        try ``attempt`` (1-based): ``"nonce"`` (re-sync the counter with
        :meth:`resynced`), ``"identity"`` (re-read the chain's identity; the counter is
        dropped) or None (give up: raise). The refused nonce is not consumed."""
        self.refused(signer, nonce)
        if error.code == "wrong_genesis" and not identity_read_again:
            self.forget(signer)
            return "identity"
        if error.code in RESYNC_CODES and attempt < self.attempts:
            return "nonce"
        return None


def _timeout(timeout: float | None) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)


_HEADERS = {"accept": "application/json"}
_JSON = {"content-type": "application/json"}


# ---- the sync face ----------------------------------------------------------------------


class LedgerClient:
    """The ledger API over HTTP, blocking. Use as a context manager, or call :meth:`close`.

    ``url`` defaults to :func:`default_ledger_url`; a URL that is not ``http(s)://HOST``
    raises ``ValueError`` at once rather than a confusing transport error later.
    """

    def __init__(self, url: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                 nonces: NoncePolicy | None = None) -> None:
        self.url = _check_url(url or default_ledger_url())
        self.timeout = timeout
        self.nonces = nonces if nonces is not None else NoncePolicy()
        self._http = httpx.Client(base_url=self.url, timeout=_timeout(timeout),
                                  headers=_HEADERS)
        self._identity: ChainIdentity | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- transport ----------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Json:
        """One request; the JSON object it returns, or the matching exception."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, method, path, self.timeout, exc) from None
        return decode(self.url, method, path, response)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Json:
        """``GET path``, decoded: for routes without a method of their own."""
        return self.request("GET", path, params=params)

    def text(self, path: str) -> str:
        """A plain-text answer (``/metrics``); LedgerError when it is not 200."""
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, "GET", path, self.timeout, exc) from None
        if response.status_code != 200:
            decode(self.url, "GET", path, response)
        return response.text

    # ---- queries ------------------------------------------------------------------------

    def chain(self) -> Json:
        """``GET /v1/chain``: chain id, height, genesis hash, faucet, sudo, block time."""
        info = self.get(CHAIN_ROUTE)
        self._identity = identity_of(self.url, info)
        return info

    def identity(self) -> ChainIdentity:
        """The chain extrinsics are signed for: id and genesis hash (fetched once)."""
        if self._identity is None:
            self.chain()
        assert self._identity is not None
        return self._identity

    def chain_id(self) -> str:
        """The chain id extrinsics must be signed for (fetched once, then cached)."""
        return self.identity().chain_id

    def genesis_hash(self) -> str:
        """The genesis hash: names this chain among all chains that share a chain id."""
        return self.identity().genesis_hash

    def account(self, address: str) -> Json:
        """``GET /v1/accounts/{ss58}``: balance and nonce (rao), stake positions."""
        path = account_route(address)
        return expect(self.url, self.get(path), path, balance=int, nonce=int, stake=list)

    def faucet(self) -> Json:
        """``GET /v1/faucet``: settings, what it paid lately, the work asked for (or null)."""
        return expect(self.url, self.get(FAUCET_ROUTE), FAUCET_ROUTE, block=int)

    def nonce(self, address: str) -> int:
        """The account's next on-chain nonce."""
        return int(self.account(address)["nonce"])

    def subnets(self) -> list[Json]:
        """``GET /v1/subnets``: every subnet's info."""
        return list(expect(self.url, self.get(SUBNETS_ROUTE), SUBNETS_ROUTE, subnets=list)
                    ["subnets"])

    def subnet(self, netuid: int) -> Json:
        """``GET /v1/subnets/{netuid}``: owner, hyperparameters, size, epochs."""
        path = subnet_route(netuid)
        return expect(self.url, self.get(path), path, hyperparameters=dict, epochs_run=int,
                      last_epoch_block=int, next_epoch_block=int)

    def metagraph(self, netuid: int) -> Json:
        """``GET /v1/subnets/{netuid}/metagraph``: ``{"netuid", "block", "neurons"}``."""
        path = subnet_route(netuid, "/metagraph")
        return expect(self.url, self.get(path), path, neurons=list)

    def weights(
        self, netuid: int, hotkey: str | None = None, uid: int | None = None
    ) -> Json:
        """``GET /v1/subnets/{netuid}/weights``: ``{"netuid", "block", "rows"}``.

        Each row is ``{"uid", "hotkey", "last_update", "weights": {"<uid>": u16}}``, the
        weights as stored on chain (under commit-reveal: as revealed). Without filters,
        every non-empty row; with ``hotkey`` or ``uid``, that neuron's one row (its
        ``weights`` empty when it set none). ``block`` is the sealed height. A uid or
        hotkey that is not a neuron of the subnet raises :class:`LedgerError`
        ``unknown_uid`` / ``unknown_hotkey`` (404), naming the field.
        """
        path = subnet_route(netuid, "/weights")
        return expect(self.url, self.get(path, filters(hotkey=hotkey, uid=uid)), path,
                      block=int, rows=list)

    def latest_block(self) -> Json:
        """``GET /v1/blocks/latest``: the newest block header."""
        return self.get(LATEST_BLOCK_ROUTE)

    def block(self, number: int) -> Json:
        """``GET /v1/blocks/{n}``: a header plus its extrinsics and receipts."""
        return self.get(block_route(number))

    def receipt(self, extrinsic_hash: str) -> Json:
        """``GET /v1/extrinsics/{hash}``: pending, included or failed (with code)."""
        return self.get(receipt_route(extrinsic_hash))

    def commits(self, netuid: int, hotkey: str | None = None) -> list[Json]:
        """``GET /v1/subnets/{netuid}/commits``: weight commits still to be revealed."""
        path = subnet_route(netuid, "/commits")
        return list(expect(self.url, self.get(path, filters(hotkey=hotkey)), path,
                           commits=list)["commits"])

    def evidence(
        self, netuid: int, hotkey: str | None = None, epoch: int | None = None
    ) -> list[Json]:
        """``GET /v1/evidence/{netuid}``: committed evidence digests, optionally filtered."""
        path = evidence_route(netuid)
        return list(expect(self.url, self.get(path, filters(hotkey=hotkey, epoch=epoch)),
                           path, digests=list)["digests"])

    # ---- submission ---------------------------------------------------------------------

    def submit_extrinsic(self, extrinsic: Extrinsic, wait: bool = False) -> Json:
        """``POST /v1/extrinsics``: ``{"hash", "status": "pending"}``, or with ``wait`` the
        receipt once a block holds it (the ledger waits up to 30 s, then answers pending).

        A refusal at the door raises :class:`LedgerError`; an included-but-failed receipt
        is returned as is (see :meth:`submit` for the raising variant).
        """
        return self.request(
            "POST", EXTRINSICS_ROUTE, params={"wait": "inclusion"} if wait else None,
            content=extrinsic.to_json(), headers=_JSON,
        )

    def submit_batch(self, extrinsics: list[Extrinsic]) -> list[Json]:
        """``POST /v1/extrinsics/batch``: one result per extrinsic, in order (each a
        ``{"hash", "status"}`` or an ``{"error": {...}}`` refusal of that one)."""
        return self.submit_encoded_batch(encode_batch(extrinsics))

    def submit_encoded_batch(self, body: bytes) -> list[Json]:
        """:meth:`submit_batch` for a body made by :func:`encode_batch` in advance."""
        answer = self.request("POST", BATCH_ROUTE, content=body, headers=_JSON)
        return list(expect(self.url, answer, BATCH_ROUTE, results=list)["results"])

    def wait_for_receipt(
        self, extrinsic_hash: str, timeout: float = INCLUSION_TIMEOUT_S, poll_s: float = 0.25
    ) -> Json:
        """Poll the receipt until it is no longer pending; LedgerError ``timeout`` if it
        stays pending for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.receipt(extrinsic_hash)
            if receipt.get("status") != "pending":
                return receipt
            if time.monotonic() >= deadline:
                raise LedgerError(
                    "timeout", f"extrinsic {extrinsic_hash} is still pending after {timeout:g} s"
                )
            time.sleep(poll_s)

    def sign(self, keypair: Keypair, call: str, params: dict[str, Any],
             nonce: int | None = None) -> Extrinsic:
        """Sign ``call(params)`` as ``keypair`` for this ledger's chain, with ``nonce`` or
        the next one of the :class:`NoncePolicy` (for batches)."""
        if nonce is None:
            signer = keypair.ss58_address
            known = self.nonces.known(signer)
            nonce = self.nonces.take(signer, self.nonce(signer) if known is None else None)
        return sign_extrinsic(keypair, call, params, nonce, self.identity())

    def submit(
        self, keypair: Keypair, call: str, params: dict[str, Any], wait: bool = True
    ) -> Json:
        """Sign with the signer's next nonce (:class:`NoncePolicy`), submit, and (with
        ``wait``) return the receipt of the including block.

        Raises :class:`LedgerError` when the ledger refuses the extrinsic or includes it as
        failed (``code`` is the chain's). Nonce refusals re-sync the counter and retry, a
        ``wrong_genesis`` refusal is retried once, signed for the chain the ledger names
        now. Without ``wait``, returns ``{"hash", "status"}``.
        """
        signer = keypair.ss58_address
        identity_read_again = False
        attempt = 0
        while True:
            attempt += 1
            extrinsic = self.sign(keypair, call, params)
            try:
                result = self.submit_extrinsic(extrinsic, wait=wait)
            except LedgerError as exc:
                action = self.nonces.after_refusal(signer, extrinsic.nonce, exc, attempt,
                                                   identity_read_again)
                if action is None:
                    raise
                if action == "identity":
                    identity_read_again, self._identity = True, None
                else:
                    self.nonces.resynced(signer, extrinsic.nonce, exc.code, self.nonce(signer))
                continue
            return self._settle(result) if wait else result

    def deregister(
        self, coldkey: Keypair, netuid: int, hotkey: str, wait: bool = True
    ) -> Json:
        """Give up ``hotkey``'s uid on ``netuid`` (signed by the coldkey that owns the
        hotkey); the receipt, as :meth:`submit` returns it.

        The uid becomes vacant at once; when it was the hotkey's last uid, every stake
        position on the hotkey is back in its coldkey's free balance in the same block.
        Refusals (``LedgerError``): ``unknown_subnet``, ``not_registered`` and
        ``not_owner``, each naming its field.
        """
        return self.submit(coldkey, "deregister", {"netuid": int(netuid), "hotkey": hotkey},
                           wait=wait)

    def _settle(self, result: Json) -> Json:
        """The final receipt of a submission made with ``wait``; raise if it failed."""
        receipt = result
        if receipt.get("status") == "pending":
            receipt = self.wait_for_receipt(str(receipt["hash"]))
        return raise_if_failed(receipt)


# ---- the async face ---------------------------------------------------------------------


class AsyncLedgerClient:
    """The same client for asyncio: neurons (writer, follower, reads) and the operator.

    Routes, decoding, errors and the nonce policy are the core's; one signer's
    submissions are serialised by a lock of its own, so its counter is never raced while
    different signers submit side by side.
    """

    def __init__(self, url: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                 nonces: NoncePolicy | None = None) -> None:
        self.url = _check_url(url or default_ledger_url())
        self.timeout = timeout
        self.nonces = nonces if nonces is not None else NoncePolicy()
        self._http = httpx.AsyncClient(base_url=self.url, timeout=_timeout(timeout),
                                       headers=_HEADERS)
        self._identity: ChainIdentity | None = None
        self._signers: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Json:
        """One request; the JSON object it returns, or the matching exception."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, method, path, self.timeout, exc) from None
        return decode(self.url, method, path, response)

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Json:
        """``GET path``, decoded: for routes without a method of their own."""
        return await self.request("GET", path, params=params)

    # ---- queries ------------------------------------------------------------------------

    async def chain(self) -> Json:
        """``GET /v1/chain`` (and the chain's identity, cached)."""
        info = await self.get(CHAIN_ROUTE)
        self._identity = identity_of(self.url, info)
        return info

    async def identity(self) -> ChainIdentity:
        """The chain extrinsics are signed for (fetched once; again after wrong_genesis)."""
        if self._identity is None:
            await self.chain()
        assert self._identity is not None
        return self._identity

    @property
    def known_identity(self) -> ChainIdentity | None:
        """The identity read so far, without asking the ledger."""
        return self._identity

    async def nonce(self, address: str) -> int:
        """The account's next on-chain nonce."""
        path = account_route(address)
        return int(expect(self.url, await self.get(path), path, nonce=int)["nonce"])

    async def account(self, address: str) -> Json:
        """``GET /v1/accounts/{ss58}``: balance and nonce (rao), stake positions."""
        path = account_route(address)
        return expect(self.url, await self.get(path), path, balance=int, nonce=int, stake=list)

    async def faucet(self) -> Json:
        """``GET /v1/faucet``: settings, what it paid lately, the work asked for (or null)."""
        return expect(self.url, await self.get(FAUCET_ROUTE), FAUCET_ROUTE, block=int)

    async def subnets(self) -> list[Json]:
        """``GET /v1/subnets``: every subnet's info."""
        return list(expect(self.url, await self.get(SUBNETS_ROUTE), SUBNETS_ROUTE,
                           subnets=list)["subnets"])

    async def subnet(self, netuid: int) -> Json:
        """``GET /v1/subnets/{netuid}``: owner, hyperparameters, size, epochs."""
        path = subnet_route(netuid)
        return expect(self.url, await self.get(path), path, hyperparameters=dict,
                      epochs_run=int, last_epoch_block=int, next_epoch_block=int)

    async def metagraph(self, netuid: int) -> Json:
        """``GET /v1/subnets/{netuid}/metagraph``."""
        path = subnet_route(netuid, "/metagraph")
        return expect(self.url, await self.get(path), path, neurons=list)

    async def commits(self, netuid: int, hotkey: str | None = None) -> list[Json]:
        """``GET /v1/subnets/{netuid}/commits``: weight commits still to be revealed."""
        path = subnet_route(netuid, "/commits")
        return list(expect(self.url, await self.get(path, filters(hotkey=hotkey)), path,
                           commits=list)["commits"])

    async def evidence(self, netuid: int, hotkey: str | None = None,
                       epoch: int | None = None) -> list[Json]:
        """``GET /v1/evidence/{netuid}``: committed evidence digests, optionally filtered."""
        path = evidence_route(netuid)
        found = await self.get(path, filters(hotkey=hotkey, epoch=epoch))
        return list(expect(self.url, found, path, digests=list)["digests"])

    async def blocks(self, on_open: Callable[[], None] | None = None) -> AsyncIterator[Json]:
        """``GET /v1/stream/blocks``: each new block header, as the ledger seals it.

        ``on_open`` is called once the ledger accepted the stream (a follower is connected
        before the first block comes). The stream has no read timeout (a block may take
        long); it ends with :class:`LedgerUnreachable` when the connection breaks.
        """
        try:
            async with self._http.stream("GET", BLOCK_STREAM_ROUTE,
                                         timeout=_timeout(None)) as stream:
                if stream.status_code != 200:
                    await stream.aread()
                    decode(self.url, "GET", BLOCK_STREAM_ROUTE, stream)
                if on_open is not None:
                    on_open()
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        header = json.loads(line[6:])
                        if isinstance(header, dict):
                            yield header
        except httpx.HTTPError as exc:
            raise unreachable(self.url, "GET", BLOCK_STREAM_ROUTE, None, exc) from None

    # ---- submission ---------------------------------------------------------------------

    async def submit(self, keypair: Keypair, call: str, params: dict[str, Any]) -> Json:
        """Sign with the signer's next nonce, submit, wait for inclusion; the receipt.

        The same rules as :meth:`LedgerClient.submit` (one :class:`NoncePolicy`);
        raises :class:`LedgerError` with the chain's code when refused or failed.
        """
        signer = keypair.ss58_address
        async with self._signers.setdefault(signer, asyncio.Lock()):
            identity_read_again = False
            attempt = 0
            while True:
                attempt += 1
                identity = await self.identity()
                known = self.nonces.known(signer)
                nonce = self.nonces.take(signer,
                                         await self.nonce(signer) if known is None else None)
                extrinsic = sign_extrinsic(keypair, call, params, nonce, identity)
                try:
                    result = await self.request(
                        "POST", EXTRINSICS_ROUTE, params={"wait": "inclusion"},
                        content=extrinsic.to_json(), headers=_JSON)
                except LedgerError as exc:
                    action = self.nonces.after_refusal(signer, nonce, exc, attempt,
                                                       identity_read_again)
                    if action is None:
                        raise
                    if action == "identity":
                        identity_read_again, self._identity = True, None
                    else:
                        self.nonces.resynced(signer, nonce, exc.code, await self.nonce(signer))
                    continue
                return raise_if_failed(await self._settle(result))

    async def _settle(self, receipt: Json) -> Json:
        """Poll a receipt the ledger still answered pending until a block holds it."""
        deadline = time.monotonic() + INCLUSION_TIMEOUT_S
        while receipt.get("status") == "pending":
            if time.monotonic() >= deadline:
                raise LedgerError("timeout", f"extrinsic {receipt.get('hash')} is still "
                                  f"pending after {INCLUSION_TIMEOUT_S:g} s")
            await asyncio.sleep(0.25)
            receipt = await self.get(receipt_route(str(receipt["hash"])))
        return receipt
