"""Wiring of the portal: pages, static assets, its MongoDB database, the services' APIs, SMTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from services.portal import handlers, i18n, problems
from services.portal.clients import ApiError, Services, ServiceUnavailable
from services.portal.domain import has_control_character
from services.portal.invitations import InvitationSender
from services.portal.mailer import PortalMailer
from services.portal.pages import ROUTERS
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from services.portal.telemetry import PortalBodyLimit, PortalMetrics, observe, start_tracing
from services.portal.web import (
    CHARTS_STATIC,
    FormExpired,
    NotYours,
    SignInNeeded,
    home_of,
    load_ctx,
    make_templates,
    served_over_https,
    sign_in_url,
)
from shared import charts
from shared.documents import utcnow
from shared.mongo import connect, ping
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# script-src 'self': no inline script and no CDN; htmx runs with allowEval off.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        settings: PortalSettings = request.app.state.settings
        if settings.hsts_seconds and served_over_https(request, settings):
            # Browsers heed it only over https (RFC 6797), hence the same test as Secure cookies.
            response.headers["Strict-Transport-Security"] = f"max-age={settings.hsts_seconds}"
        return response


async def readable_path_ids(request: Request) -> None:
    """A control character in a path id (`/company/positions/%00`) names nothing, and cannot
    go into the URL of a service call or a Location header: not found, like any unknown id."""
    if any(has_control_character(str(value)) for value in request.path_params.values()):
        raise StarletteHTTPException(status_code=404)


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    settings.require_jwt_secret()  # fail at start, not on the first sign-in
    start_tracing()
    # The consuming side (handlers.py): the services' decisions that end people's rights. It has
    # its own MongoDB client; the pages keep theirs.
    client = connect(settings.mongodb_uri)
    store = PortalStore(client[settings.database])
    metrics = PortalMetrics(store)
    runtime = ServiceRuntime(
        name="portal",
        settings=settings,
        database=settings.database,
        publishes=[],
        metrics=metrics,
    )
    handlers.register(runtime, PortalStore(runtime.db))
    services = Services.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.ensure_indexes()
        await runtime.start()
        sweeper = asyncio.create_task(sweep(store), name="portal-sweep")
        sender = asyncio.create_task(app.state.invitations.run(), name="portal-invitations")
        try:
            yield
        finally:
            sweeper.cancel()
            await app.state.invitations.stop(sender)
            await runtime.stop()
            for task in list(app.state.background):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=10)
            await services.close()
            await client.close()

    app = FastAPI(
        title="Portal",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Every route, those added later included: checked before the page's own dependencies.
        dependencies=[Depends(readable_path_ids)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.runtime = runtime
    app.state.services = services
    app.state.mailer = PortalMailer(settings)
    app.state.invitations = InvitationSender(store, app.state.mailer, settings)
    app.state.templates = make_templates()
    app.state.background = set()
    app.state.metrics = metrics
    # Before the body is parsed or a session looked up; inside SecurityHeaders, so that the
    # 413 page has the portal's CSP too.
    app.add_middleware(PortalBodyLimit, max_bytes=settings.http_max_body_bytes)
    app.add_middleware(SecurityHeaders)
    # The KPI charts' scripts (vendored Vega, no CDN), before /static that would hide them.
    app.mount(CHARTS_STATIC, StaticFiles(directory=str(charts.STATIC_DIR)), name="charts")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    install_error_pages(app)

    # Browsers ask for /favicon.ico whatever the page links: answer with the linked icon.
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": "portal"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready(response: Response) -> dict[str, Any]:
        mongo_ok = await ping(store.db)
        if not mongo_ok:
            response.status_code = 503
        return {"service": "portal", "ready": mongo_ok, "mongodb": mongo_ok}

    for router in ROUTERS:
        app.include_router(router)
    observe(app, metrics)  # last: /metrics, the access log and spans around everything
    return app


async def sweep(store: PortalStore) -> None:
    while True:
        try:
            await store.sweep(utcnow())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("sweep of expired sessions and links failed; retrying later")
        await asyncio.sleep(300)


def install_error_pages(app: FastAPI) -> None:
    async def page(request: Request, status: int, title: str, message: str) -> Response:
        ctx = await load_ctx(request)
        return await ctx.render(
            "error.html",
            status=status,
            title=title,
            message=message,
            home=home_of(ctx.role),
        )

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(_request: Request, exc: SignInNeeded) -> Response:
        return Response(status_code=303, headers={"Location": sign_in_url(exc.next_path)})

    @app.exception_handler(NotYours)
    async def not_yours(request: Request, _exc: NotYours) -> Response:
        return await not_found_page(request)

    async def not_found_page(request: Request) -> Response:
        return await page(
            request,
            404,
            i18n.gettext("Page not found"),
            i18n.gettext("There is no such page, or it is not yours to see."),
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if exc.status in (403, 404):
            return await not_found_page(request)
        ctx = await load_ctx(request)
        return await ctx.render(
            "error.html",
            status=exc.status if exc.status in (409, 422) else 400,
            title=i18n.gettext("That did not work"),
            message=i18n.gettext("Nothing was changed, for this reason:"),
            problems=problems.describe_all(exc),
            home=home_of(ctx.role),
        )

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, _exc: ServiceUnavailable) -> Response:
        return await page(
            request,
            503,
            i18n.gettext("Temporarily unavailable"),
            i18n.gettext("A part of the platform is not answering. Please try again in a minute."),
        )

    @app.exception_handler(FormExpired)
    async def form_expired(request: Request, _exc: FormExpired) -> Response:
        return await page(
            request,
            403,
            i18n.gettext("The form has expired"),
            i18n.gettext(
                "For your security the form could not be accepted. Go back, reload the page "
                "and send it again."
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return await not_found_page(request)
        return HTMLResponse(str(exc.detail), status_code=exc.status_code)
