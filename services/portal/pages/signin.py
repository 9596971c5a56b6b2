"""Sign-in without passwords: a one-time link by e-mail, then a session cookie."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.portal import i18n, recipients
from services.portal.clients import ApiError, Services, ServiceUnavailable
from services.portal.domain import (
    DEFAULT_TIME_ZONE,
    Ambiguous,
    Holder,
    PortalRole,
    digest,
    holders,
    new_secret,
    normalise_email,
    safe_next,
    sign_in_holder,
    student_domain_allowed,
    window_start,
)
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from services.portal.web import LANGUAGE_COOKIE, SESSION_COOKIE, Ctx, home_of, load_ctx
from shared.documents import utcnow
from shared.ids import new_id

log = logging.getLogger(__name__)
router = APIRouter()
AnyCtx = Annotated[Ctx, Depends(load_ctx)]


async def address_holders(store: PortalStore, services: Services, email: str) -> list[Holder]:
    """Every live identity the address belongs to: the portal's own person and the company
    registrations whose contact it is (ServiceUnavailable when the latter cannot be asked)."""
    user = await store.find_user(email)
    try:
        companies = await services.as_portal().get(
            "applications", "/companies", contact_email=email
        )
    except ApiError as exc:
        raise ServiceUnavailable("applications") from exc
    return holders(user, companies)


async def resolve(
    store: PortalStore, services: Services, settings: PortalSettings, email: str
) -> tuple[PortalRole, str] | None:
    """Who this address may sign in as: (role, id), or None. Ambiguous when it belongs to
    more than one live identity."""
    try:
        found = await address_holders(store, services, email)
    except ServiceUnavailable:
        # Staff and students still sign in while company contacts cannot be looked up.
        log.warning("company contacts could not be looked up for a sign-in request")
        found = holders(await store.find_user(email), [])
        if not found and not student_domain_allowed(email, settings.student_domains):
            raise
    holder = sign_in_holder(found)
    if holder is not None:
        return holder.role, holder.sub
    if not found and student_domain_allowed(email, settings.student_domains):
        # A new student: the id is reserved in the link and the account made when it is used.
        return PortalRole.STUDENT, new_id("stu")
    return None


async def within_limits(ctx: Ctx, email: str) -> bool:
    s = ctx.settings
    now = utcnow()
    window = window_start(now, s.sign_in_limit_window_minutes)
    length = timedelta(minutes=s.sign_in_limit_window_minutes)
    client = ctx.request.client.host if ctx.request.client else "unknown"
    # Counters are keyed by digests: the rate-limit collection holds no address in clear.
    by_address = await ctx.store.count_hit(f"address:{digest(email)}", window, length)
    by_client = await ctx.store.count_hit(f"client:{digest(client)}", window, length)
    return by_address <= s.sign_in_limit_per_address and by_client <= s.sign_in_limit_per_client


@router.get("/sign-in")
async def sign_in_form(ctx: AnyCtx, request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"), "")
    return await ctx.render("signin/request.html", next_path=next_path, email="", problem=None)


@router.post("/sign-in")
async def request_link(ctx: AnyCtx) -> Response:
    form = await ctx.form()
    next_path = safe_next(str(form.get("next", "")), "")
    raw = str(form.get("email", ""))[:300]
    email = normalise_email(raw)
    if email is None:
        return await ctx.render(
            "signin/request.html", status=422, next_path=next_path, email=raw, problem="email"
        )
    if not await within_limits(ctx, email):
        return await ctx.render(
            "signin/request.html", status=429, next_path=next_path, email=raw, problem="limit"
        )
    if not student_domain_allowed(email, ctx.settings.student_domains):
        # Perhaps a company's contact: if their registrations cannot be looked up now, say so
        # rather than pretend that a link is on its way (asked for every such address, known
        # or not, so the answer tells nothing about the address).
        await ctx.services.as_portal().get("applications", "/health/ready")
    # Who the address belongs to is looked up, and the link written and mailed, after the
    # answer: a known address answers as fast as an unknown one.
    task = asyncio.create_task(
        issue_link(ctx.request.app, email, next_path, ctx.language), name="sign-in-link"
    )
    ctx.request.app.state.background.add(task)
    task.add_done_callback(ctx.request.app.state.background.discard)
    # The same answer whether or not the address may sign in.
    return await ctx.render("signin/sent.html", email=email)


async def issue_link(app: Any, email: str, next_path: str, language: str) -> None:
    """Write and mail a one-time link if the address may sign in; otherwise nothing (said
    in the log, never to the requester)."""
    state = app.state
    recipient = digest(email)[:12]
    try:
        identity = await resolve(state.store, state.services, state.settings, email)
    except Ambiguous as exc:
        log.warning(
            "sign-in refused: the address belongs to more than one identity "
            "(see `python -m services.portal identities`)",
            extra={"recipient": recipient, "holders": str(exc)},
        )
        return
    except ServiceUnavailable:
        state.metrics.sign_in_links.labels("failed").inc()
        log.error(
            "sign-in link not sent: company contacts could not be looked up",
            extra={"recipient": recipient},
        )
        return
    except Exception:
        state.metrics.sign_in_links.labels("failed").inc()
        log.exception("sign-in link not sent", extra={"recipient": recipient})
        return
    if identity is None:
        return
    role, sub = identity
    secret = new_secret()
    ttl = timedelta(minutes=state.settings.sign_in_link_minutes)
    url = f"{state.settings.public_base_url.rstrip('/')}/sign-in/verify?token={secret}"
    try:
        await state.store.create_link(
            secret, email=email, role=role, sub=sub, next_path=next_path, ttl=ttl
        )
        await state.mailer.send_sign_in_link(email, language, url)
        state.metrics.sign_in_links.labels("sent").inc()
        log.info("sign-in link sent", extra={"recipient": recipient})
    except Exception:
        state.metrics.sign_in_links.labels("failed").inc()
        log.exception("sign-in link could not be sent", extra={"recipient": recipient})


@router.get("/sign-in/verify")
async def verify_form(ctx: AnyCtx, request: Request) -> Response:
    # Only a page with a button: mail scanners that open links must not spend them.
    token = request.query_params.get("token", "")[:100]
    link = await ctx.store.peek_link(token) if token else None
    response = await ctx.render("signin/verify.html", token=token, link=link)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/sign-in/verify")
async def verify(ctx: AnyCtx) -> Response:
    form = await ctx.form()
    token = str(form.get("token", ""))[:100]
    link = await ctx.store.use_link(token) if token else None
    links = ctx.request.app.state.metrics.sign_in_links
    if link is None:
        links.labels("refused").inc()
        return await ctx.render("signin/verify.html", status=400, token="", link=None)
    role = PortalRole(link["role"])
    sub = link["sub"]
    user = await ctx.store.find_user(link["email"])
    if role is PortalRole.STUDENT:
        # The account is made when a new student's first link is used (another link of theirs
        # may have made it already: its id wins).
        user = user or await ctx.store.add_user(link["email"], role, sub)
    if role is not PortalRole.COMPANY and (
        user is None or user["role"] != role.value or (role.is_staff and user["sub"] != sub)
    ):
        # Removed, or the address went to someone else since the link was written.
        links.labels("refused").inc()
        return await ctx.render("signin/verify.html", status=400, token="", link=None)
    if user is not None and role is not PortalRole.COMPANY:
        sub = user["sub"]
    links.labels("used").inc()
    prefs = await stored_preferences(ctx, role, sub, user or {})
    # A language picked on this browser wins; else the one the person chose in their profile.
    chosen = i18n.parse_language(ctx.request.cookies.get(LANGUAGE_COOKIE))
    language = chosen or i18n.parse_language(prefs.language) or ctx.language
    if ctx.session is not None:
        await ctx.store.delete_session(ctx.session["_id"])  # no session fixation
    secret = new_secret()
    hours = ctx.settings.session_absolute_hours
    session = await ctx.store.create_session(
        secret,
        expires_at=utcnow() + timedelta(hours=hours),
        role=role.value,
        sub=sub,
        email=link["email"],
        display=prefs.display,
        language=language,
        time_zone=prefs.time_zone or DEFAULT_TIME_ZONE[role],
        university=prefs.university,
        flash=["signed_in", {}],
    )
    ctx.session = session
    ctx.cookies.append((SESSION_COOKIE, secret, hours * 3600))
    if role is PortalRole.COORDINATOR:  # the program's mails reach every coordinator
        await recipients.register_quietly(ctx.api, sub, link["email"], prefs.display)
    return ctx.redirect(safe_next(link.get("next"), home_of(role)))


@dataclass
class Preferences:
    display: str | None = None
    language: str | None = None
    time_zone: str | None = None
    university: str | None = None


async def stored_preferences(
    ctx: Ctx, role: PortalRole, sub: str, user: dict[str, Any]
) -> Preferences:
    """The name, language and time zone the person keeps with their party (the student's
    profile, the company's contact, the operator's entry for staff), and a university
    office's university."""
    caller = ctx.services.as_person(role.value, sub)
    if role is PortalRole.COMPANY:
        company = await caller.get("applications", f"/companies/{sub}")
        contact = company.get("contact") or {}
        return Preferences(
            company.get("name_ja"), contact.get("preferred_language"), contact.get("time_zone")
        )
    if role is PortalRole.STUDENT:
        try:
            profile = await caller.get("applications", f"/students/{sub}")
        except (ApiError, ServiceUnavailable):
            return Preferences(user.get("name"))
        return Preferences(
            profile.get("name"), profile.get("preferred_language"), profile.get("time_zone")
        )
    return Preferences(
        user.get("name"), user.get("language"), user.get("time_zone"), user.get("university")
    )


@router.post("/sign-out")
async def sign_out(ctx: AnyCtx) -> Response:
    await ctx.form()
    if ctx.session is not None:
        await ctx.store.delete_session(ctx.session["_id"])
        ctx.session = None
    ctx.cookies.append((SESSION_COOKIE, "", 0))
    return await ctx.render("signin/signed_out.html")
