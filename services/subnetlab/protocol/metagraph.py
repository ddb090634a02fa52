"""What a miner knows about its callers: a read-only view of the subnet's metagraph.

The guard never asks the ledger anything while a request waits: the miner refreshes a view
from the ledger's block stream and swaps it in whole (see
:meth:`subnetlab.protocol.guard.RequestGuard.replace_metagraph`). A view is therefore
treated as immutable: build a new one per refresh instead of mutating the one in use, so
every request is judged against one consistent snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["CallerInfo", "MetagraphView", "StaticMetagraph", "is_vacant", "occupied"]


def is_vacant(row: Mapping[str, Any]) -> bool:
    """Whether a metagraph row is a vacant uid (its hotkey deregistered; the ledger marks
    it `vacant: true`, hotkey null): nobody may be called, trusted or weighted through it."""
    return bool(row.get("vacant"))


Row = TypeVar("Row", bound=Mapping[str, Any])


def occupied(neurons: Iterable[Row]) -> list[Row]:
    """The rows of uids a hotkey holds, in uid order (vacant uids left out)."""
    return [row for row in neurons if not is_vacant(row)]


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """A registered hotkey as the miner sees it.

    ``stake`` is what orders work when the miner is busy; the ledger reports it in rao, but
    any unit works as long as one view uses one unit: only its order matters.
    """

    uid: int
    stake: float
    validator_permit: bool


@runtime_checkable
class MetagraphView(Protocol):
    """Anything that can say whether a hotkey is registered, and with what stake and permit.

    ``lookup`` is called once per request on the hot path: it must be a cheap, non-blocking
    in-memory lookup (a dict access), never a network call.
    """

    def lookup(self, hotkey: str) -> CallerInfo | None:
        """The caller's uid, stake and permit, or ``None`` when it is not registered."""
        ...


class StaticMetagraph:
    """A :class:`MetagraphView` over a fixed mapping ``hotkey -> CallerInfo``.

    The mapping is copied, so later changes to the caller's dict cannot leak into a view the
    guard is using.
    """

    __slots__ = ("_callers",)

    def __init__(self, callers: Mapping[str, CallerInfo] | None = None) -> None:
        self._callers: dict[str, CallerInfo] = dict(callers or {})

    @classmethod
    def from_neurons(cls, neurons: Iterable[Mapping[str, Any]]) -> StaticMetagraph:
        """A view from the ledger's metagraph rows (``GET /v1/subnets/{netuid}/metagraph``).

        Each row needs ``hotkey``, ``uid``, ``stake`` and ``validator_permit``; other keys are
        ignored. Vacant uids are left out: no caller can claim one.
        """
        return cls(
            {
                str(row["hotkey"]): CallerInfo(
                    uid=int(row["uid"]),
                    stake=float(row["stake"]),
                    validator_permit=bool(row["validator_permit"]),
                )
                for row in occupied(neurons)
            }
        )

    def lookup(self, hotkey: str) -> CallerInfo | None:
        return self._callers.get(hotkey)

    def __len__(self) -> int:
        return len(self._callers)

    def __iter__(self) -> Iterator[str]:
        return iter(self._callers)

    def __repr__(self) -> str:
        return f"StaticMetagraph({len(self._callers)} hotkeys)"
