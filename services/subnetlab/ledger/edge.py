"""Where the ledger's refusals become HTTP: the one map from error code to status.

The node and the chain refuse with a machine-readable code (`Refused`, `ChainError`) and
know nothing of HTTP; the routes raise `ApiError` for what only the API can get wrong (an
unknown block, a bad path parameter). Here both become the one error body
`{"error": {"code", "message", "field"}}`, and a code becomes its status: 403 permission,
429 rate, 409 conflict, 401 a signature that does not verify, 413 too large, 503 the node
stopped (`not_ready`), 400 anything else a caller got wrong.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from subnetlab.chain.errors import ErrorCode
from subnetlab.ledger.node import LedgerNode, Refused

STATUS_OF_CODE: dict[str, int] = {
    # the chain's transitions (`ChainError` codes, dry-run at the door)
    ErrorCode.NOT_SUDO: 403,
    ErrorCode.NOT_OWNER: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_REGISTRATIONS: 429,
    ErrorCode.FAUCET_BUDGET_EXHAUSTED: 429,
    ErrorCode.FAUCET_POW_EXPIRED: 409,
    ErrorCode.STALE_NONCE: 409,
    ErrorCode.FUTURE_NONCE: 409,
    ErrorCode.ALREADY_REGISTERED: 409,
    # the node's own door
    "bad_signature": 401,
    "already_known": 409,
    "too_large": 413,
    "not_ready": 503,
}
"""Codes whose status is not 400 (StrEnum members hash as their strings)."""


def status_of(code: str) -> int:
    """The HTTP status of a refusal with `code` (400 unless `STATUS_OF_CODE` says else)."""
    return STATUS_OF_CODE.get(code, 400)


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """The API's error body with `status`."""
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message, "field": field}}
    )


def refused(node: LedgerNode, exc: Refused) -> JSONResponse:
    """A refusal of the node as the API answers it; counted by code in the metrics."""
    node.metrics.refused.labels(code=exc.code).inc()
    return JSONResponse(status_code=status_of(exc.code), content=exc.to_dict())


class ApiError(Exception):
    """Raised by routes for what only the API checks (unknown block, bad query value);
    unlike a node's refusal it names its status itself, as the route decides it."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def install_error_handlers(app: FastAPI) -> None:
    """Every error `app` answers, in the one error body: refusals, route errors, request
    validation (422 `invalid_request`) and Starlette's own (404 `not_found`)."""

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return refused(request.app.state.node, exc)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return error(422, "invalid_request", str(first.get("msg", "invalid request")), where)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return error(exc.status_code, code, str(exc.detail))
