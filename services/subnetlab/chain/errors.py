"""Errors of the chain's state machine: one exception type, a machine-readable code.

Every refused extrinsic raises `ChainError` before the state is touched. The ledger turns
`code` into its API error (and a metric label) and shows `message` to the user, so the
message always names the parameter at fault and says why, e.g.
``amount: 5000 rao exceeds the free balance of 4000 rao``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The codes a transition can fail with (values are stable API strings)."""

    STALE_NONCE = "stale_nonce"
    FUTURE_NONCE = "future_nonce"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    INSUFFICIENT_STAKE = "insufficient_stake"
    UNKNOWN_SUBNET = "unknown_subnet"
    UNKNOWN_ACCOUNT = "unknown_account"
    NOT_REGISTERED = "not_registered"
    ALREADY_REGISTERED = "already_registered"
    NOT_OWNER = "not_owner"
    NOT_SUDO = "not_sudo"
    RATE_LIMITED = "rate_limited"
    SUBNET_FULL = "subnet_full"
    TOO_FEW_WEIGHTS = "too_few_weights"
    WEIGHT_LIMIT_EXCEEDED = "weight_limit_exceeded"
    INVALID_UID = "invalid_uid"
    DUPLICATE_UID = "duplicate_uid"
    INVALID_WEIGHTS = "invalid_weights"
    NO_COMMIT = "no_commit"
    COMMIT_MISMATCH = "commit_mismatch"
    REVEAL_TOO_EARLY = "reveal_too_early"
    REVEAL_TOO_LATE = "reveal_too_late"
    COMMIT_REVEAL_DISABLED = "commit_reveal_disabled"
    COMMIT_REVEAL_ENABLED = "commit_reveal_enabled"
    TOO_MANY_COMMITS = "too_many_commits"
    DUPLICATE_EVIDENCE = "duplicate_evidence"
    FAUCET_DISABLED = "faucet_disabled"
    INVALID_PARAM = "invalid_param"
    UNKNOWN_CALL = "unknown_call"
    TOO_MANY_REGISTRATIONS = "too_many_registrations"
    FAUCET_BUDGET_EXHAUSTED = "faucet_budget_exhausted"
    FAUCET_POW_REQUIRED = "faucet_pow_required"
    FAUCET_POW_EXPIRED = "faucet_pow_expired"
    FAUCET_POW_INVALID = "faucet_pow_invalid"
    AXON_IP_NOT_ALLOWED = "axon_ip_not_allowed"


class ChainError(Exception):
    """A refused transition. `code` is an `ErrorCode` value; `field` the parameter at fault.

    The state is guaranteed unchanged when this is raised: transitions validate everything
    before they mutate anything.
    """

    def __init__(self, code: ErrorCode | str, message: str, field: str | None = None) -> None:
        self.code: str = str(ErrorCode(code))
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)

    @property
    def message(self) -> str:
        """The human message, prefixed by the parameter it concerns."""
        return str(self)

    def to_dict(self) -> dict[str, str | None]:
        """The JSON body the ledger returns for a refused extrinsic."""
        return {"code": self.code, "field": self.field, "message": self.message}

    def __repr__(self) -> str:
        return f"ChainError(code={self.code!r}, message={self.message!r})"
