"""A synchronous client of the ledger's HTTP API, for the CLI and scripts.

One ``httpx.Client`` is reused for every request (keep-alive: a ``submit`` is three or four
requests). Failures come out as two exception types a caller can act on:

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

import os
import time
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
    "LedgerClient",
    "LedgerClientError",
    "LedgerError",
    "LedgerUnreachable",
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
_NONCE_ATTEMPTS = 8


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


# ---- the client -------------------------------------------------------------------------


class LedgerClient:
    """The ledger API over HTTP. Use as a context manager, or call :meth:`close`.

    ``url`` defaults to :func:`default_ledger_url`; a URL that is not ``http(s)://HOST``
    raises ``ValueError`` at once rather than a confusing transport error later.
    """

    def __init__(self, url: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = _check_url(url or default_ledger_url())
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S),
            headers={"accept": "application/json"},
        )
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

    def _request(self, method: str, path: str, **kwargs: Any) -> Json:
        """One request; the JSON object it returns, or the matching exception."""
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LedgerUnreachable(
                f"cannot reach the ledger at {self.url}: {_reason(exc)} "
                "(is `subnetlab ledger serve` running? set --ledger or SUBNETLAB_LEDGER)"
            ) from None
        except httpx.TimeoutException:
            raise LedgerUnreachable(
                f"the ledger at {self.url} did not answer {method} {path} within "
                f"{self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise LedgerUnreachable(
                f"cannot talk to the ledger at {self.url}: {_reason(exc)}"
            ) from None
        return self._decode(method, path, response)

    def _decode(self, method: str, path: str, response: httpx.Response) -> Json:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LedgerError(
                "bad_response",
                f"{method} {path} answered HTTP {response.status_code} without a JSON object; "
                f"is {self.url} a subnetlab ledger?",
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

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Json:
        return self._request("GET", path, params=params)

    def _expect(self, body: Json, path: str, **fields: type | tuple[type, ...]) -> Json:
        """``body`` if it has these fields with these types, else LedgerError bad_response.

        Callers index these fields directly; a server that is not a subnetlab ledger (or
        another version of it) must fail with a sentence, not a KeyError traceback.
        """
        for name, kind in fields.items():
            value = body.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise LedgerError(
                    "bad_response",
                    f"GET {path} answered without a valid {name!r}; is {self.url} a "
                    "subnetlab ledger?",
                )
        return body

    # ---- queries ------------------------------------------------------------------------

    def chain(self) -> Json:
        """``GET /v1/chain``: chain id, height, genesis hash, faucet, sudo, block time."""
        info = self._expect(self._get("/v1/chain"), "/v1/chain",
                            chain_id=str, genesis_hash=str, block=int, block_time=(int, float))
        try:
            self._identity = chain_identity(info)
        except ValueError as exc:
            raise LedgerError("bad_response", f"{exc}; is {self.url} a subnetlab ledger?"
                              ) from None
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
        path = f"/v1/accounts/{quote(address, safe='')}"
        return self._expect(self._get(path), path, balance=int, nonce=int, stake=list)

    def faucet(self) -> Json:
        """``GET /v1/faucet``: settings, what it paid lately, the work asked for (or null)."""
        return self._expect(self._get("/v1/faucet"), "/v1/faucet", block=int)

    def nonce(self, address: str) -> int:
        """The account's next on-chain nonce."""
        return int(self.account(address)["nonce"])

    def subnets(self) -> list[Json]:
        """``GET /v1/subnets``: every subnet's info."""
        return list(self._expect(self._get("/v1/subnets"), "/v1/subnets", subnets=list)
                    ["subnets"])

    def subnet(self, netuid: int) -> Json:
        """``GET /v1/subnets/{netuid}``: owner, hyperparameters, size, epochs."""
        path = f"/v1/subnets/{int(netuid)}"
        return self._expect(self._get(path), path, hyperparameters=dict, epochs_run=int,
                            last_epoch_block=int, next_epoch_block=int)

    def metagraph(self, netuid: int) -> Json:
        """``GET /v1/subnets/{netuid}/metagraph``: ``{"netuid", "block", "neurons"}``."""
        path = f"/v1/subnets/{int(netuid)}/metagraph"
        return self._expect(self._get(path), path, neurons=list)

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
        path = f"/v1/subnets/{int(netuid)}/weights"
        params = {k: v for k, v in (("hotkey", hotkey), ("uid", uid)) if v is not None}
        return self._expect(self._get(path, params or None), path, block=int, rows=list)

    def latest_block(self) -> Json:
        """``GET /v1/blocks/latest``: the newest block header."""
        return self._get("/v1/blocks/latest")

    def block(self, number: int) -> Json:
        """``GET /v1/blocks/{n}``: a header plus its extrinsics and receipts."""
        return self._get(f"/v1/blocks/{int(number)}")

    def receipt(self, extrinsic_hash: str) -> Json:
        """``GET /v1/extrinsics/{hash}``: pending, included or failed (with code)."""
        return self._get(f"/v1/extrinsics/{quote(extrinsic_hash, safe='')}")

    def commits(self, netuid: int, hotkey: str | None = None) -> list[Json]:
        """``GET /v1/subnets/{netuid}/commits``: weight commits still to be revealed."""
        params = {} if hotkey is None else {"hotkey": hotkey}
        path = f"/v1/subnets/{int(netuid)}/commits"
        return list(self._expect(self._get(path, params), path, commits=list)["commits"])

    def evidence(
        self, netuid: int, hotkey: str | None = None, epoch: int | None = None
    ) -> list[Json]:
        """``GET /v1/evidence/{netuid}``: committed evidence digests, optionally filtered."""
        params = {k: v for k, v in (("hotkey", hotkey), ("epoch", epoch)) if v is not None}
        return list(self._get(f"/v1/evidence/{int(netuid)}", params)["digests"])

    # ---- submission ---------------------------------------------------------------------

    def submit_extrinsic(self, extrinsic: Extrinsic, wait: bool = False) -> Json:
        """``POST /v1/extrinsics``: ``{"hash", "status": "pending"}``, or with ``wait`` the
        receipt once a block holds it (the ledger waits up to 30 s, then answers pending).

        A refusal at the door raises :class:`LedgerError`; an included-but-failed receipt
        is returned as is (see :meth:`submit` for the raising variant).
        """
        return self._request(
            "POST", "/v1/extrinsics", params={"wait": "inclusion"} if wait else None,
            content=extrinsic.to_json(), headers={"content-type": "application/json"},
        )

    def submit_batch(self, extrinsics: list[Extrinsic]) -> list[Json]:
        """``POST /v1/extrinsics/batch``: one result per extrinsic, in order."""
        body = {"extrinsics": [ext.model_dump(mode="json") for ext in extrinsics]}
        return list(self._request("POST", "/v1/extrinsics/batch", json=body)["results"])

    def wait_for_receipt(
        self, extrinsic_hash: str, timeout: float = INCLUSION_TIMEOUT_S
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
            time.sleep(0.25)

    def sign(self, keypair: Keypair, call: str, params: dict[str, Any], nonce: int) -> Extrinsic:
        """Sign ``call(params)`` as ``keypair`` for this ledger's chain."""
        return sign_extrinsic(keypair, call, params, nonce, self.identity())

    def submit(
        self, keypair: Keypair, call: str, params: dict[str, Any], wait: bool = True
    ) -> Json:
        """Sign with the account's next nonce, submit, and (with ``wait``) return the
        receipt of the including block.

        Raises :class:`LedgerError` when the ledger refuses the extrinsic or includes it as
        failed (``code`` is the chain's). The on-chain nonce does not count this signer's
        extrinsics still waiting for a block, so a ``stale_nonce`` refusal is retried with
        the next nonce a few times. A ``wrong_genesis`` refusal (the ledger started a new
        chain since this client read its identity) is retried once, signed for the chain
        the ledger names now. Without ``wait``, returns ``{"hash", "status"}``.
        """
        nonce = self.nonce(keypair.ss58_address)
        attempts_left = _NONCE_ATTEMPTS
        identity_read_again = False
        while True:
            extrinsic = self.sign(keypair, call, params, nonce)
            try:
                result = self.submit_extrinsic(extrinsic, wait=wait)
            except LedgerError as exc:
                if exc.code == "wrong_genesis" and not identity_read_again:
                    identity_read_again = True
                    self._identity = None
                    nonce = self.nonce(keypair.ss58_address)
                    continue
                attempts_left -= 1
                if exc.code != "stale_nonce" or attempts_left == 0:
                    raise
                nonce += 1
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
        if receipt.get("status") == "failed":
            raise LedgerError(
                str(receipt.get("code") or "failed"),
                str(receipt.get("message") or "the extrinsic failed in its block"),
                receipt.get("field"),
            )
        return receipt
