"""Public pages: the program, the public call for host companies, the language switch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.portal import i18n, problems
from services.portal.clients import ApiError
from services.portal.domain import normalise_email, safe_next
from services.portal.problems import address_in_use
from services.portal.web import LANGUAGE_COOKIE, Ctx, load_ctx

router = APIRouter()
AnyCtx = Annotated[Ctx, Depends(load_ctx)]

CALL_FIELDS = ("name_ja", "name_en", "sector", "ward", "address")
CONTACT_FIELDS = ("name", "email", "preferred_language")


@router.get("/")
async def program(ctx: AnyCtx) -> Response:
    return await ctx.render("public/program.html")


@router.get("/call")
async def call_form(ctx: AnyCtx) -> Response:
    return await ctx.render("public/call.html", values={}, problems=[])


@router.post("/call")
async def answer_call(ctx: AnyCtx) -> Response:
    form = await ctx.form()
    values = {k: str(form.get(k, "")).strip() for k in (*CALL_FIELDS, *CONTACT_FIELDS)}
    body: dict[str, Any] = {k: values[k] for k in CALL_FIELDS}
    body["contact"] = {k: values[k] for k in CONTACT_FIELDS}
    address = normalise_email(values["email"])
    if address is not None and await ctx.store.find_user(address) is not None:
        # Staff or a student already: one address, one person (the applications service
        # refuses another company's address itself).
        return await ctx.render(
            "public/call.html",
            status=422,
            values=values,
            problems=[address_in_use(problems.CALL["contact.email"])],
        )
    try:
        company = await ctx.services.anonymous().post("applications", "/companies", body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await ctx.render(
            "public/call.html",
            status=422,
            values=values,
            problems=problems.describe_all(exc, problems.CALL),
        )
    return await ctx.render("public/call_done.html", company=company)


@router.get("/language/{code}")
async def switch_language(code: str, request: Request, ctx: AnyCtx) -> Response:
    language = i18n.parse_language(code) or i18n.SOURCE_LANGUAGE
    if ctx.session is not None:
        await ctx.store.update_session(ctx.session["_id"], {"language": language})
    ctx.cookies.append((LANGUAGE_COOKIE, language, 365 * 24 * 3600))
    return ctx.redirect(safe_next(request.query_params.get("next")))
