"""What operators see of the portal, like of every service: GET /metrics (prometheus-client),
one JSON access log line per request with its request id and trace id (shared/access_log.py),
OpenTelemetry spans of requests (shared/tracing.py; exported only when OTEL_TRACES_EXPORTER
asks), and the request body limit HTTP_MAX_BODY_BYTES (shared/http.py).

The portal publishes nothing; its small consumer (handlers.py) is counted like every service's
(shared.metrics.ServiceMetrics: consumed events, dead letters, lag), plus its own metrics:
sign-in links sent / failed / used / refused, and the stored sessions that have not expired
(counted at scrape time, at most every few seconds). Unlike the services' ports, the portal's
is public behind the Ingress: /metrics answers "not found" to forwarded requests.

The body limit answers with the portal's error page in the person's language (not the APIs'
JSON), and with plain text should even that page fail (MongoDB down): never a 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.portal import i18n
from services.portal.problems import Problem
from services.portal.store import PortalStore
from services.portal.web import home_of, load_ctx
from shared.access_log import AccessLog
from shared.documents import utcnow
from shared.http import BodyLimit, Receive, Scope, Send
from shared.metrics import ServiceMetrics
from shared.mongo import ping
from shared.runtime import VERSION
from shared.tracing import configure_tracing

log = logging.getLogger(__name__)

SERVICE = "portal"
# What became of sign-in links: sent (the e-mail left), failed (it could not be sent), used
# (someone signed in with it), refused (an unknown, spent or expired link was posted).
LINK_OUTCOMES = ("sent", "failed", "used", "refused")
# Set by the Ingress controller (and any reverse proxy) on what it forwards.
FORWARDED_HEADERS = {"x-forwarded-for", "forwarded", "x-real-ip"}


class PortalMetrics(ServiceMetrics):
    def __init__(self, store: PortalStore) -> None:
        super().__init__(SERVICE, VERSION)
        self.store = store
        self.sign_in_links = Counter(
            "kitakyushu_portal_sign_in_links",
            "Sign-in links by outcome: sent, failed (not sent), used, refused (unknown, spent "
            "or expired)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in LINK_OUTCOMES:
            self.sign_in_links.labels(outcome)
        self.active_sessions = Gauge(
            "kitakyushu_portal_active_sessions",
            "Stored portal sessions not past their absolute expiry",
            registry=self.registry,
        )
        self.refresh_with("sessions", self._count_sessions)
        self.refresh_with("dependencies", self._check_mongodb)

    async def _count_sessions(self) -> None:
        count = await self.store.sessions.count_documents({"expires_at": {"$gt": utcnow()}})
        self.active_sessions.set(count)

    async def _check_mongodb(self) -> None:
        self.dependency_up.labels("mongodb").set(1 if await ping(self.store.db) else 0)


def start_tracing() -> None:
    """Before the MongoDB client is made (PyMongo's listeners apply to later clients)."""
    configure_tracing(SERVICE, VERSION)


def observe(app: FastAPI, metrics: PortalMetrics) -> None:
    """GET /metrics, the access log and request spans. Call last, after every other
    middleware: the access log is then the outermost of the app's (a request the body limit
    refuses is logged and counted too), inside OpenTelemetry's."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        # The Ingress serves the portal to everyone; Prometheus scrapes the pod itself. A
        # request that a proxy forwarded is not Prometheus': "not found", like any page.
        if FORWARDED_HEADERS & set(request.headers.keys()):
            raise StarletteHTTPException(404)
        body, content_type = await metrics.exposition()
        return Response(body, media_type=content_type)

    app.add_middleware(AccessLog, metrics=metrics)
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="/health/live,/health/ready,/metrics,/static/.*",
        exclude_spans=["receive", "send"],
    )


class PortalBodyLimit(BodyLimit):
    """shared.http.BodyLimit, answering with a page rather than the APIs' JSON."""

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than the limit of {self.max_bytes} bytes"
        response: Response
        try:
            ctx = await load_ctx(Request(scope, receive))
            response = await ctx.render(
                "error.html",
                status=413,
                title=i18n.gettext("That did not work"),
                message=i18n.gettext("Nothing was changed, for this reason:"),
                problems=[Problem(i18n.gettext("The entry was not accepted."), detail=detail)],
                home=home_of(ctx.role),
            )
        except Exception:
            log.warning("the page for a too large request could not be made", exc_info=True)
            response = PlainTextResponse(detail, status_code=413)
        await response(scope, receive, send)
