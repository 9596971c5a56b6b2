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
from services.portal.clients import ApiError, ServiceUnavailable
from services.portal.domain import (
    DEFAULT_TIME_ZONE,
    PortalRole,
    digest,
    new_secret,
    normalise_email,
    safe_next,
    student_domain_allowed,
    window_start,
)
from services.portal.web import LANGUAGE_COOKIE, SESSION_COOKIE, Ctx, home_of, load_ctx
from shared.documents import utcnow
from shared.ids import new_id

log = logging.getLogger(__name__)
router = APIRouter()
AnyCtx = Annotated[Ctx, Depends(load_ctx)]
# A company's contact signs in once the city office has approved the company, and still after a
# suspension or rejection: the mail that tells them links to their pages, and confirmed
# placements stay (the services refuse what such a company may no longer do). A registration
# still waiting for a decision gets no link.
COMPANY_SIGN_IN = ("approved", "suspended", "rejected")


async def resolve(ctx: Ctx, email: str) -> tuple[PortalRole, str, str | None] | None:
    """Who this address may sign in as: (role, id, display name), or None."""
    # The company look-up runs for every address, known or not, so that the time to answer
    # does not tell whether an address is registered.
    try:
        companies = await ctx.services.as_portal().get("applications", "/companies")
    except (ApiError, ServiceUnavailable):
        log.warning("could not look up company contacts for a sign-in request")
        companies = None
    user = await ctx.store.find_user(email)
    if user is not None:
        return PortalRole(user["role"]), user["sub"], user.get("name")
    if companies is None and not student_domain_allowed(email, ctx.settings.student_domains):
        # Perhaps a company's contact, but we cannot tell now: say so rather than pretend
        # that a link is on its way (this tells nothing about the address).
        raise ServiceUnavailable("applications")
    for company in companies or []:
        contact = company.get("contact") or {}
        if (
            company.get("status") in COMPANY_SIGN_IN
            and str(contact.get("email", "")).lower() == email
        ):
            return PortalRole.COMPANY, company["id"], company.get("name_ja")
    if student_domain_allowed(email, ctx.settings.student_domains):
        # A new student: the id is reserved in the link and the account made when it is used.
        return PortalRole.STUDENT, new_id("stu"), None
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
    identity = await resolve(ctx, email)
    if identity is not None:
        role, sub, _name = identity
        secret = new_secret()
        ttl = timedelta(minutes=ctx.settings.sign_in_link_minutes)
        await ctx.store.create_link(
            secret, email=email, role=role, sub=sub, next_path=next_path, ttl=ttl
        )
        url = f"{ctx.settings.public_base_url.rstrip('/')}/sign-in/verify?token={secret}"
        # Sent after the answer, so an unknown address answers as fast as a known one.
        task = asyncio.create_task(send_link(ctx, email, url))
        ctx.request.app.state.background.add(task)
        task.add_done_callback(ctx.request.app.state.background.discard)
    # The same answer whether or not the address may sign in.
    return await ctx.render("signin/sent.html", email=email)


async def send_link(ctx: Ctx, email: str, url: str) -> None:
    try:
        await ctx.request.app.state.mailer.send_sign_in_link(email, ctx.language, url)
        ctx.request.app.state.metrics.sign_in_links.labels("sent").inc()
        log.info("sign-in link sent", extra={"recipient": digest(email)[:12]})
    except Exception:
        ctx.request.app.state.metrics.sign_in_links.labels("failed").inc()
        log.exception("sign-in link could not be sent", extra={"recipient": digest(email)[:12]})


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
    links.labels("used").inc()
    role = PortalRole(link["role"])
    sub = link["sub"]
    user = await ctx.store.find_user(link["email"])
    if role is PortalRole.STUDENT and user is None:
        user = await ctx.store.add_user(link["email"], role, sub)
    if user is not None:
        role, sub = PortalRole(user["role"]), user["sub"]
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
