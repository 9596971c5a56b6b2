"""Uniform HTTP error bodies: every 4xx says which field and why,
`{"detail": [{"field": "skills.0", "reason": "..."}]}` (documented in the OpenAPI by
shared/http.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException


class ErrorItem(BaseModel):
    field: str | None = Field(description="The input that was refused (dotted path), if any.")
    reason: str = Field(description="Why, in words a person can act on.")
    # Clients decide on the code, never on the (English, changeable) reason.
    code: str | None = Field(
        default=None, description="A stable code for the rule that refused it, if it has one."
    )
    # A 409 from a state machine says where the thing stands and where it could go.
    current_state: str | None = Field(
        default=None, description="409 from a lifecycle: the current state."
    )
    allowed: list[str] | None = Field(
        default=None, description="409 from a lifecycle: the states or actions allowed now."
    )


class ErrorBody(BaseModel):
    """The body of every 4xx answer."""

    detail: list[ErrorItem]


class DomainError(Exception):
    """A rule was broken by the request. Carries the HTTP status, the field and the reason."""

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        status_code: int = 422,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.status_code = status_code
        # More facts for the client, e.g. a 409's current state and allowed next states.
        self.extra = extra or {}


def not_found(what: str, ident: str) -> DomainError:
    return DomainError(f"{what} {ident!r} not found", status_code=status.HTTP_404_NOT_FOUND)


def forbidden(reason: str) -> DomainError:
    """Only for what a role may never do. A resource that exists but is not the caller's is
    `not_found`: a 403 there would tell that the id exists."""
    return DomainError(reason, status_code=status.HTTP_403_FORBIDDEN)


def conflict(
    reason: str, field: str | None = None, extra: dict[str, Any] | None = None
) -> DomainError:
    return DomainError(reason, field=field, status_code=status.HTTP_409_CONFLICT, extra=extra)


def _body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"detail": errors}


def error_response(status_code: int, reason: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status_code, content=_body([{"field": field, "reason": reason}])
    )


MAX_ERRORS_REPORTED = 20

# pydantic prefixes the message of a validator's ValueError; the reason reads better without.
_PREFIXES = ("Value error, ", "Assertion failed, ")


def _reason(message: str) -> str:
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=_body([{"field": exc.field, "reason": exc.reason, **exc.extra}]),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        # The first few problems are enough to act on; a list of 1000 bad items is not.
        for err in exc.errors()[:MAX_ERRORS_REPORTED]:
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            reason = _reason(str(err.get("msg", "invalid")))
            errors.append({"field": ".".join(loc) or None, "reason": reason})
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content=_body(errors)
        )

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=_body([{"field": None, "reason": str(exc.detail)}]),
            headers=getattr(exc, "headers", None),
        )
