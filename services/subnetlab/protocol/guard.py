"""The miner's door: every check a signed request passes before any work is done for it.

:class:`RequestGuard` runs the checks in a fixed order, and each failure is a distinct
:class:`Refusal` with an HTTP status and a machine-readable code:

====  ======================  ===================================================
 #    status / code           refused when
====  ======================  ===================================================
 1    400 malformed_headers   an Epistula header is missing or cannot be parsed
 2    401 bad_signature       the signature does not verify for ``Signed-By``
 3    401 stale_request       ``|now - timestamp| > freshness`` (8 s), either way
 4    401 replayed_request    this caller's uuid was admitted within the window
 5    401 wrong_recipient     ``Signed-For`` is not a hotkey this miner serves
 6    403 unregistered_caller ``Signed-By`` is not registered on the subnet
 7    403 no_validator_permit the caller holds no validator permit
 8    403 blacklisted         the caller is on this miner's blacklist
 9    429 rate_limited        the caller's token bucket is empty
====  ======================  ===================================================

Why this order: nothing about the caller is believed before its signature is (2 before
3..9), so a forger learns nothing but "bad signature" and cannot touch the replay cache or
a rate-limit bucket of someone else; freshness comes before replay so the replay cache only
ever needs to cover one window; the cheap, stateless identity checks (5..8) come before the
rate limit, the only check that spends something.

A uuid is *recorded* only when its request is admitted, so refused requests (from anyone
with a keypair, registered or not) cannot fill the replay cache, and the cache is bounded
by what the rate limits admit. Each signed request is still admitted at most once.

``check`` is synchronous and does no I/O: call it from an ``async`` endpoint (it never
yields to the event loop, so check-and-record is atomic there). The stateful part is also
under a lock, so threaded servers are safe too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from subnetlab.keys import DEFAULT_SS58_FORMAT
from subnetlab.protocol.epistula import (
    MalformedHeaders,
    SignedRequest,
    parse_headers,
    verify_signature,
    wall_clock_ms,
)
from subnetlab.protocol.limits import RateLimit, ReplayCache, ReplayCacheFull, TokenBuckets
from subnetlab.protocol.metagraph import MetagraphView

__all__ = [
    "DEFAULT_FRESHNESS_MS",
    "Admission",
    "Refusal",
    "RefusalCode",
    "RequestGuard",
    "busy_refusal",
]

DEFAULT_FRESHNESS_MS = 8_000
"""A request is fresh while its timestamp is within 8 s of the miner's clock, either way."""

_DEFAULT_RATE_LIMIT = RateLimit()


class RefusalCode(StrEnum):
    """Why a request was refused; the value is the ``code`` in the JSON error body."""

    MALFORMED_HEADERS = "malformed_headers"
    BAD_SIGNATURE = "bad_signature"
    STALE_REQUEST = "stale_request"
    REPLAYED_REQUEST = "replayed_request"
    WRONG_RECIPIENT = "wrong_recipient"
    UNREGISTERED_CALLER = "unregistered_caller"
    NO_VALIDATOR_PERMIT = "no_validator_permit"
    BLACKLISTED = "blacklisted"
    RATE_LIMITED = "rate_limited"
    REPLAY_CACHE_FULL = "replay_cache_full"
    BUSY = "busy"


class Refusal(Exception):  # noqa: N818 -- a decision, not an error of the miner
    """A request the miner will not serve: answer ``status`` with :meth:`as_json`.

    ``code`` is one of :class:`RefusalCode`; ``message`` is for humans and never echoes
    header values beyond the caller's own address. ``caller`` is the caller's hotkey only
    when the signature verified *and* the caller is registered on the subnet (refusals 7..9
    and ``replay_cache_full``), else ``None``: anyone can mint keys, so a hotkey that is
    not registered is no identity worth labelling (a metric keyed by it would grow without
    bound), while registered ones are bounded by the subnet's registrations.
    """

    def __init__(self, status: int, code: RefusalCode, message: str,
                 caller: str | None = None) -> None:
        super().__init__(f"{status} {code.value}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.caller = caller

    def as_json(self) -> dict[str, dict[str, str]]:
        """The body to send: ``{"error": {"code", "message"}}``, like the ledger's errors."""
        return {"error": {"code": self.code.value, "message": self.message}}


def busy_refusal(reason: Exception | str = "all slots are busy") -> Refusal:
    """The 429 ``busy`` refusal a miner answers when its priority gate raises ``QueueFull``."""
    return Refusal(429, RefusalCode.BUSY, str(reason))


@dataclass(frozen=True, slots=True)
class Admission:
    """A request that passed every check: who sent it, and the stake that orders its work."""

    hotkey: str
    uid: int
    stake: float
    request_uuid: str
    signed_for: str
    """The miner hotkey the request was signed for (one of the guard's recipients)."""


class RequestGuard:
    """The miner-side checks of :mod:`subnetlab.protocol.guard`'s table, in that order.

    ``hotkey`` is this miner's SS58 hotkey (what ``Epistula-Signed-For`` must say);
    ``also_for`` are further hotkeys the same process answers for (a sybil: several
    registered hotkeys, one engine), each accepted as ``Signed-For`` like ``hotkey``;
    ``metagraph`` and ``blacklist`` can be replaced at any time with
    :meth:`replace_metagraph` / :meth:`replace_blacklist` (one attribute store each: a
    request is judged against either the old or the new one, never a mix).
    ``rate_limit`` is per caller (default :class:`RateLimit`: 50/s, bursts of 100);
    ``None`` turns rate limiting off. ``accept_broadcast`` also admits requests
    signed for ``""``. ``clock_ms`` (wall clock, ms since the epoch: freshness) and
    ``monotonic`` (seconds: rate limits) are injectable for tests.
    """

    def __init__(
        self,
        hotkey: str,
        metagraph: MetagraphView,
        *,
        also_for: Iterable[str] = (),
        blacklist: Iterable[str] = (),
        freshness_ms: int = DEFAULT_FRESHNESS_MS,
        rate_limit: RateLimit | None = _DEFAULT_RATE_LIMIT,
        accept_broadcast: bool = False,
        replay_cache_size: int = 262_144,
        ss58_format: int | None = DEFAULT_SS58_FORMAT,
        clock_ms: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if freshness_ms <= 0:
            raise ValueError(f"freshness_ms must be positive, got {freshness_ms}")
        self.hotkey = hotkey
        self.recipients: frozenset[str] = frozenset((hotkey, *also_for))
        self.freshness_ms = freshness_ms
        self.accept_broadcast = accept_broadcast
        self._metagraph = metagraph
        self._blacklist: frozenset[str] = frozenset(blacklist)
        self._replay = ReplayCache(replay_cache_size)
        self._buckets = TokenBuckets(rate_limit if rate_limit is not None else RateLimit())
        self._rate_limited = rate_limit is not None
        self._ss58_format = ss58_format
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._lock = threading.Lock()

    # ---- live configuration -----------------------------------------------------------

    @property
    def metagraph(self) -> MetagraphView:
        return self._metagraph

    def replace_metagraph(self, view: MetagraphView) -> None:
        """Judge later requests against ``view`` (built fresh by the miner's sync loop)."""
        self._metagraph = view

    @property
    def blacklist(self) -> frozenset[str]:
        return self._blacklist

    def replace_blacklist(self, hotkeys: Iterable[str]) -> None:
        """Refuse these hotkeys from now on (403 ``blacklisted``), replacing the old list."""
        self._blacklist = frozenset(hotkeys)

    @property
    def replay_cache_entries(self) -> int:
        """Admitted request ids still inside the freshness window (for metrics)."""
        return len(self._replay)

    # ---- the checks -------------------------------------------------------------------

    def check_headers(self, headers: Mapping[str, str]) -> SignedRequest:
        """Check 1 alone (400 ``malformed_headers``), before the body is read: a request
        that is not even signed is refused without reading what it sends."""
        try:
            return parse_headers(headers, ss58_format=self._ss58_format)
        except MalformedHeaders as exc:
            raise Refusal(400, RefusalCode.MALFORMED_HEADERS, str(exc)) from None

    def check(self, headers: Mapping[str, str], body: bytes) -> Admission:
        """Admit the request or raise :class:`Refusal`; ``body`` is the raw request body."""
        request = self.check_headers(headers)
        if not verify_signature(request, body):
            raise Refusal(401, RefusalCode.BAD_SIGNATURE,
                          "the request signature does not verify for Epistula-Signed-By")
        now_ms = self._clock_ms()
        skew = now_ms - request.timestamp_ms
        if skew > self.freshness_ms or -skew > self.freshness_ms:
            raise Refusal(401, RefusalCode.STALE_REQUEST,
                          f"timestamp is {skew / 1000:+.1f} s from the miner's clock; "
                          f"allowed ±{self.freshness_ms / 1000:g} s")
        with self._lock:
            return self._admit(request, now_ms)

    def _admit(self, request: SignedRequest, now_ms: int) -> Admission:
        replay = self._replay
        replay.evict(now_ms)
        key = (request.signed_by, request.uuid)
        if replay.seen(key):
            raise Refusal(401, RefusalCode.REPLAYED_REQUEST,
                          "this request id was already served")
        signed_for = request.signed_for
        if signed_for not in self.recipients:
            if not (self.accept_broadcast and signed_for == ""):
                raise Refusal(401, RefusalCode.WRONG_RECIPIENT,
                              "Epistula-Signed-For does not name this miner")
            signed_for = self.hotkey
        caller = self._metagraph.lookup(request.signed_by)
        if caller is None:
            raise Refusal(403, RefusalCode.UNREGISTERED_CALLER,
                          f"{request.signed_by} is not registered on this subnet")
        if not caller.validator_permit:
            raise Refusal(403, RefusalCode.NO_VALIDATOR_PERMIT,
                          f"{request.signed_by} holds no validator permit", request.signed_by)
        if request.signed_by in self._blacklist:
            raise Refusal(403, RefusalCode.BLACKLISTED,
                          f"{request.signed_by} is blacklisted by this miner", request.signed_by)
        if self._rate_limited and not self._buckets.take(request.signed_by, self._monotonic()):
            raise Refusal(429, RefusalCode.RATE_LIMITED,
                          f"{request.signed_by} exceeds {self._buckets.limit.rate:g} requests/s",
                          request.signed_by)
        try:
            replay.add(key, request.timestamp_ms + self.freshness_ms)
        except ReplayCacheFull as exc:
            raise Refusal(503, RefusalCode.REPLAY_CACHE_FULL, str(exc),
                          request.signed_by) from None
        return Admission(hotkey=request.signed_by, uid=caller.uid, stake=caller.stake,
                         request_uuid=request.uuid, signed_for=signed_for)
