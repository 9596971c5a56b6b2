"""HTTP hygiene every service shares, installed by `harden(app, settings)`:

- a request body limit (HTTP_MAX_BODY_BYTES) enforced before anything parses the body or
  checks the token, so a 10 MB body costs nothing but the bytes already received;
- security headers on every response (nosniff, no framing, no referrer, no caching: every API
  response may carry personal data);
- an OpenAPI document that describes the real error body `{"detail": [{"field", "reason"}]}`
  and the 400/401/403/404/409/413/422 answers each operation can give;
- and a service that cannot check tokens (no JWT_SECRET) does not start at all.

The two middlewares are plain ASGI (no BaseHTTPMiddleware): they wrap `receive`/`send` and add
no task or buffering of responses. Starlette and FastAPI ship no body-size limit, hence ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response, routing
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from shared.errors import ErrorBody, error_response
from shared.settings import CommonSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def harden(app: FastAPI, settings: CommonSettings) -> None:
    """Install everything above on a service's app (before it starts)."""
    settings.require_jwt_secret()  # raises MissingSecretError with the reason
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last = outermost: the 413 gets the headers too
    app.add_exception_handler(405, _method_not_allowed)
    document_errors(app)


async def _method_not_allowed(request: Request, _exc: Exception) -> Response:
    """405 with an `Allow` header listing every method of the path (Starlette's names only
    the first route that matched the path, e.g. POST but not GET for /cohorts)."""
    path = request.url.path
    allowed = {
        method
        for context in routing.iter_route_contexts(request.app.routes)
        if context.path_format and compile_path(context.path_format)[0].fullmatch(path)
        for method in (context.methods or ())
    }
    response = error_response(405, f"{request.method} is not allowed here")
    response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


class BodyLimit:
    """Reads the whole request body first and answers 413 as soon as it passes `max_bytes`
    (at once when Content-Length says so); only then hands the body on to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as usual

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"the request body is larger than the limit of {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


ERROR_DESCRIPTIONS = {
    400: "The body could not be read: it is not text in UTF-8.",
    401: "No valid bearer token: missing, expired, forged, too long-lived, or its subject is "
    "not an id of its role.",
    403: "The caller's role may not do this (the reason names the roles that may).",
    404: "Not found, or not the caller's: both answer the same, so ids cannot be probed.",
    409: "Conflicts with the current state (the reason says which and what to do).",
    413: "The request body is larger than the service accepts (HTTP_MAX_BODY_BYTES).",
    422: "Invalid input: each item names the field and the reason.",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
HEALTH_503 = "Not live or not ready: the report says which part (a probe's answer, not an error)."


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` describe the error answers each operation can really give."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        _add_error_schema(schema)
        for path, route in _api_routes(app):
            for method in route.methods or ():
                operation = schema["paths"].get(path, {}).get(method.lower())
                if operation is not None:
                    _document_operation(route, path, method, operation)
        schemas = schema["components"]["schemas"]
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(path, route) of every documented operation, included routers resolved (FastAPI 0.165
    keeps included routers as wrappers; `iter_route_contexts` is how its OpenAPI walks them)."""
    found = []
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema and context.path_format:
            found.append((context.path_format, route))
    return found


def _add_error_schema(schema: dict[str, Any]) -> None:
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body


def _document_operation(route: APIRoute, path: str, method: str, operation: dict[str, Any]) -> None:
    """Which errors an operation can answer follows from what it takes and who may call it:
    401 with a token, 403 with a role check, 404 and 422 with any input (ids, filters, body),
    400 with a body (bytes that are not UTF-8), 409 for writes, 413 for every request (the
    body limit applies before routing)."""
    takes_input = bool(operation.get("parameters")) or "requestBody" in operation
    codes = [413]
    if operation.get("security"):
        codes.append(401)
    roles = _roles(route)
    if roles:
        codes.append(403)
        operation["x-roles"] = roles  # who may call it (clients and tests read this)
    if takes_input:
        codes += [404, 422]
    if "requestBody" in operation:
        codes.append(400)
    if method not in ("GET", "HEAD"):
        codes.append(409)
    responses = operation.setdefault("responses", {})
    if path.startswith("/health/") and "200" in responses:
        # A probe answers 503 with the same report when the service is not live or ready.
        responses["503"] = {**responses["200"], "description": HEALTH_503}
    for code in codes:
        responses[str(code)] = {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
    operation["responses"] = dict(sorted(responses.items()))


def _roles(route: APIRoute) -> list[str]:
    """The roles a `shared.auth.require(...)` dependency of the route admits ([] if none)."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        roles = getattr(dependency.call, "roles", None)
        if roles:
            return [str(role) for role in roles]
        pending.extend(dependency.dependencies)
    return []
