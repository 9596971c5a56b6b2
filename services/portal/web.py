"""Request plumbing shared by every page: the session, the language, CSRF, rendering and
redirects."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import FormData

from services.portal import i18n, labels
from services.portal.clients import Caller, Services
from services.portal.delivery_notes import delivery_note
from services.portal.domain import (
    DEFAULT_TIME_ZONE,
    HOME,
    PortalRole,
    SessionPolicy,
    csrf_token,
    csrf_valid,
    new_secret,
)
from services.portal.labels import company_name
from services.portal.messages import CONFIRMATIONS
from services.portal.settings import PortalSettings
from services.portal.store import Doc, PortalStore
from shared import charts
from shared.bounds import without_bidi_controls
from shared.documents import utcnow

log = logging.getLogger(__name__)

SESSION_COOKIE = "portal_session"
BROWSER_COOKIE = "portal_browser"  # anonymous visitors' CSRF key
LANGUAGE_COOKIE = "portal_lang"
TEMPLATES = Path(__file__).parent / "templates"
CHARTS_STATIC = "/static/charts"  # where shared/charts/static is served
SIGN_IN_PATHS = ("/sign-in", "/sign-out")


def make_templates() -> Jinja2Templates:
    # The portal's own templates, then the KPI charts' partial (shared/charts).
    templates = Jinja2Templates(directory=[str(TEMPLATES), str(charts.TEMPLATES_DIR)])
    env = templates.env
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        moment=i18n.format_moment,
        day=i18n.format_day,
        zone_name=i18n.zone_name,
        time_zone_options=i18n.time_zone_options,
        LANGUAGE_NAMES=i18n.LANGUAGE_NAMES,
        label=labels.label,
        delivery_note=delivery_note,
        options=labels.options,
        JLPT=labels.JLPT,
        ENGLISH=labels.ENGLISH,
        with_query=with_query,
        charts_static=CHARTS_STATIC,
        # Chinese and Japanese use the full-width colon after a label.
        colon=lambda: "：" if i18n.current_language() in ("zh-TW", "ja") else ": ",
        # Between listed items and clauses: Chinese and Japanese punctuation, not ASCII.
        comma=lambda: "、" if i18n.current_language() in ("zh-TW", "ja") else ", ",
        semicolon=lambda: "；" if i18n.current_language() in ("zh-TW", "ja") else "; ",
        company_name=lambda company: company_name(company, i18n.current_language()),
        university_name=lambda name: labels.university_name(name, i18n.current_language()),
    )
    env.policies["ext.i18n.trimmed"] = True
    env.finalize = shown
    env.filters["bdi"] = isolated
    return templates


def isolated(value: Any) -> Markup:
    """People's text printed inline, beside other text or in a sentence (`|bdi` in element
    content; not in attributes or <title>, which are plain text): a name in Arabic or Hebrew
    keeps its own direction without reordering the numbers or words around it."""
    return Markup("<bdi>{}</bdi>").format(value)


def shown(value: Any) -> Any:
    """Every value a template prints, without bidi embeddings, overrides and isolates: the
    services drop them from what they accept (shared.bounds); this covers what they stored
    before, and the portal's own records."""
    if isinstance(value, Markup):
        return Markup(without_bidi_controls(str(value)))
    return without_bidi_controls(value)


class SignInNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class NotYours(Exception):
    """A page of another role, or something that is not the person's: shown as not found."""


class FormExpired(Exception):
    """The CSRF token is missing or does not match the browser's session."""


@dataclass
class Ctx:
    request: Request
    settings: PortalSettings
    store: PortalStore
    services: Services
    templates: Jinja2Templates
    session: Doc | None
    browser_key: str
    language: str
    new_browser_cookie: bool = False
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)

    @property
    def role(self) -> PortalRole | None:
        return PortalRole(self.session["role"]) if self.session else None

    @property
    def sub(self) -> str:
        assert self.session is not None
        return str(self.session["sub"])

    @property
    def csrf(self) -> str:
        key = self.session["_id"] if self.session else self.browser_key
        return csrf_token(self.settings.require_jwt_secret(), key)

    @property
    def api(self) -> Caller:
        if self.session is None:
            return self.services.anonymous()
        return self.services.as_person(
            self.session["role"], self.session["sub"], self.session.get("university")
        )

    @property
    def secure_cookies(self) -> bool:
        mode = self.settings.cookie_secure
        if mode != "auto":
            return mode == "true"
        return served_over_https(self.request, self.settings)

    async def check_csrf(self, form: FormData) -> None:
        token = form.get("csrf_token")
        key = self.session["_id"] if self.session else self.browser_key
        if not csrf_valid(self.settings.require_jwt_secret(), key, str(token or "")):
            raise FormExpired()

    async def form(self) -> FormData:
        """The posted form, after its CSRF check."""
        form = await self.request.form()
        await self.check_csrf(form)
        return form

    async def flash(self, key: str, **values: Any) -> None:
        if self.session is not None:
            await self.store.update_session(self.session["_id"], {"flash": [key, values]})

    async def render(self, template: str, status: int = 200, **values: Any) -> Response:
        flash = None
        if self.session is not None:
            flash = confirmation(await self.store.pop_flash(self.session["_id"]))
        response = self.templates.TemplateResponse(
            self.request,
            template,
            {"ctx": self, "path": self.request.url.path, "flash": flash, **values},
            status_code=status,
        )
        return self.finish(response)

    def redirect(self, path: str) -> Response:
        if self.request.headers.get("hx-request") == "true":
            # After an htmx form post: a full navigation, so the address bar shows the page.
            return self.finish(Response(status_code=200, headers={"HX-Redirect": path}))
        return self.finish(RedirectResponse(path, status_code=303))

    def finish(self, response: Response) -> Response:
        if self.new_browser_cookie:
            self.set_cookie(response, BROWSER_COOKIE, self.browser_key, None)
        for name, value, max_age in self.cookies:
            self.set_cookie(response, name, value, max_age)
        if self.session is not None or is_sign_in_page(self.request.url.path):
            # Pages with personal data are not kept by the browser or a proxy, nor are the
            # sign-in pages (they show the address and hold the link's secret).
            response.headers["Cache-Control"] = "no-store"
        return response

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            secure=self.secure_cookies,
            samesite="lax",
            path="/",
        )


async def load_ctx(request: Request) -> Ctx:
    """The person behind this request (if signed in), their language and time zone."""
    state = request.app.state
    settings: PortalSettings = state.settings
    store: PortalStore = state.store
    session = None
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and len(secret) < 200:
        session = await store.get_session(secret)
        if session is not None:
            now = utcnow()
            policy = SessionPolicy(
                idle=_minutes(settings.session_idle_minutes),
                absolute=_minutes(settings.session_absolute_hours * 60),
            )
            if policy.expired(session["created_at"], session["last_seen"], now):
                await store.delete_session(session["_id"])
                session = None
            elif (now - session["last_seen"]).total_seconds() > 30:
                await store.touch_session(session["_id"], now)
    browser_key = request.cookies.get(BROWSER_COOKIE) or ""
    new_cookie = not (16 <= len(browser_key) <= 100)
    if new_cookie:
        browser_key = new_secret()
    language = (
        i18n.parse_language(request.cookies.get(LANGUAGE_COOKIE))
        or (session or {}).get("language")
        or i18n.negotiate(request.headers.get("accept-language"))
        or i18n.SOURCE_LANGUAGE
    )
    role = PortalRole(session["role"]) if session else None
    time_zone = (session or {}).get("time_zone") or (
        DEFAULT_TIME_ZONE[role] if role else "Asia/Tokyo"
    )
    i18n.use(language, time_zone)
    return Ctx(
        request=request,
        settings=settings,
        store=store,
        services=state.services,
        templates=state.templates,
        session=session,
        browser_key=browser_key,
        language=language,
        new_browser_cookie=new_cookie,
    )


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def role_ctx(*roles: PortalRole) -> Any:
    """A dependency: the page's context, for a signed-in person of one of `roles`."""

    async def dependency(request: Request) -> Ctx:
        ctx = await load_ctx(request)
        if ctx.session is None:
            target = request.url.path
            if request.url.query and request.method == "GET":
                target += "?" + request.url.query
            raise SignInNeeded(target)
        if ctx.role not in roles:
            raise NotYours()
        return ctx

    return dependency


def with_query(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return request.url.path + ("?" + query if query else "")


def served_over_https(request: Request, settings: PortalSettings) -> bool:
    """Whether the browser reached the portal over https: the request's scheme (uvicorn takes
    it from X-Forwarded-Proto when the proxy is in FORWARDED_ALLOW_IPS) or PUBLIC_BASE_URL."""
    return request.url.scheme == "https" or settings.public_base_url.startswith("https://")


def is_sign_in_page(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in SIGN_IN_PATHS)


def sign_in_url(next_path: str) -> str:
    return "/sign-in?" + urlencode({"next": next_path}, quote_via=quote)


def confirmation(flash: Any) -> tuple[str, str] | None:
    """The translated (what happened, what next) of a stored confirmation."""
    if not flash:
        return None
    key, values = flash
    if key not in CONFIRMATIONS:
        return None
    done, next_step = CONFIRMATIONS[key]
    if isinstance(done, tuple):
        text = i18n.ngettext(done[0], done[1], int(values.get("count", 0)))
    else:
        text = i18n.gettext(done)
    return (text % values if values else text), i18n.gettext(next_step)


def home_of(role: PortalRole | None) -> str:
    return HOME[role] if role else "/"
