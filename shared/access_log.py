"""One access log line per HTTP request, with its request id and trace id, and the HTTP
metrics (rate, latency, status by route template).

The request id comes from the client's X-Request-ID when it is a sane id, or is generated;
it is returned in the response's X-Request-ID, is current while the request is handled (log
lines, spans) and travels with the events the request writes (see shared/tracing.py).

Plain ASGI middleware (no BaseHTTPMiddleware: no extra task, no buffered response). It sits
inside OpenTelemetry's middleware, so the request's span is current here, and outside every
other middleware, so a request another middleware refuses is logged and counted too. The
route label is the matched route's template (`/applications/{application_id}`), never the
raw path (unbounded cardinality, and ids in it); the line has the path without the query
string (a query may carry a sign-in token).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import trace

from shared import tracing
from shared.metrics import HttpMetrics

log = logging.getLogger("access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"
# Probes and scrapes: counted, but logged at DEBUG unless they fail (every few seconds each).
QUIET_PREFIXES = ("/health/", "/metrics")


class AccessLog:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(HEADER, b"").decode("latin-1")
        request_id = tracing.accepted_request_id(given) or uuid.uuid4().hex
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("http.request.id", request_id)
        status = 500  # unless the app answers
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *[(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER],
                    (HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            with tracing.request_id(request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            method = scope.get("method", "")
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_duration.labels(method, route).observe(elapsed)
            path = scope.get("path", "")
            quiet = path.startswith(QUIET_PREFIXES) and status < 500
            client = scope.get("client")
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                f"{method} {path} {status}",
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "request_id": request_id,
                    "trace_id": tracing.trace_id_of(span),
                    "client": client[0] if client else None,
                },
            )


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"
