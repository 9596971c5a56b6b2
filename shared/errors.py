"""Uniform HTTP error bodies: every 4xx says which field and why."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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
    return DomainError(reason, status_code=status.HTTP_403_FORBIDDEN)


def conflict(
    reason: str, field: str | None = None, extra: dict[str, Any] | None = None
) -> DomainError:
    return DomainError(reason, field=field, status_code=status.HTTP_409_CONFLICT, extra=extra)


def _body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"detail": errors}


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
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            errors.append({"field": ".".join(loc) or None, "reason": err.get("msg", "invalid")})
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
