"""The student: profile and consent, positions, a ranked application, status and answers,
erasure."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.portal import i18n, problems
from services.portal.clients import ApiError
from services.portal.domain import (
    PortalRole,
    can_answer,
    contains,
    keep_known,
    list_view,
    reorder,
    standing,
)
from services.portal.labels import company_name
from services.portal.pages.common import by_id, params
from services.portal.web import LANGUAGE_COOKIE, SESSION_COOKIE, Ctx, role_ctx

router = APIRouter(prefix="/student")
Student = Annotated[Ctx, Depends(role_ctx(PortalRole.STUDENT))]
PROFILE_FIELDS = (
    "name",
    "department",
    "degree_program",
    "graduation_year",
    "jlpt_level",
    "english_level",
    "available_from",
    "available_to",
    "preferred_language",
    "time_zone",
)
MAX_CHOICES = 10
JLPT_STRENGTH = {"N1": 5, "N2": 4, "N3": 3, "N4": 2, "N5": 1}


async def own_profile(ctx: Ctx) -> dict[str, Any] | None:
    try:
        return await ctx.api.get("applications", f"/students/{ctx.sub}")  # type: ignore[no-any-return]
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def active_application(ctx: Ctx, cohort_id: str | None = None) -> dict[str, Any] | None:
    """The student's application that takes part (not withdrawn), in `cohort_id` if given:
    one per cohort."""
    applications = await ctx.api.get("applications", "/applications", cohort_id=cohort_id)
    active = [a for a in applications if a["state"] != "withdrawn"]
    return active[-1] if active else None


@router.get("")
async def status(ctx: Student) -> Response:
    """One page for where the student stands: proposals to answer (with the deadline in their
    time zone), every application with its status in words and what comes next, every
    proposal and placement."""
    profile = await own_profile(ctx)
    applications = [
        a
        for a in await ctx.api.get("applications", "/applications")
        if not a.get("replaced_by")  # an edit: the application that replaced it stands for it
    ]
    proposals = await ctx.api.get("matching", "/proposals")
    placements = await ctx.api.get("matching", "/placements")
    positions = by_id(await ctx.api.get("applications", "/positions"))
    companies = by_id(await ctx.api.get("applications", "/companies/directory"))
    cohorts = by_id(await ctx.api.get("applications", "/cohorts"))
    view = list_view(
        applications,
        params(ctx),
        sorts={
            "cohort": lambda a: a["cohort_id"],
            "sent": lambda a: a["submitted_at"],
            "state": lambda a: a["state"],
        },
        default_sort="sent",
        filters={"state": lambda a, v: a["state"] == v},
        page_size=ctx.settings.page_size,
        newest_first=True,
    )
    return await ctx.render(
        "student/status.html",
        profile=profile,
        view=view,
        standings={
            a["id"]: standing(a, by_id(proposals), {p["proposal_id"]: p for p in placements})
            for a in applications
        },
        proposals=sorted(proposals, key=lambda p: p["proposed_at"], reverse=True),
        waiting=[p for p in proposals if can_answer(p)],
        placements=placements,
        positions=positions,
        companies=companies,
        cohorts=cohorts,
    )


@router.get("/profile")
async def profile(ctx: Student) -> Response:
    profile = await own_profile(ctx)
    if profile is None:
        invited = await invitation(ctx)
        profile = {
            "name": invited.get("name", ""),
            "department": invited.get("department", ""),
            "preferred_language": ctx.language,
            "time_zone": ctx.session.get("time_zone") if ctx.session else None,
            "consent_to_data_use": False,
        }
        return await ctx.render("student/profile.html", values=profile, problems=[], new=True)
    return await ctx.render("student/profile.html", values=profile, problems=[], new=False)


async def invitation(ctx: Ctx) -> dict[str, Any]:
    """What the university office's roster said about this student, if they were invited."""
    assert ctx.session is not None
    return await ctx.store.find_user(ctx.session["email"]) or {}


@router.post("/profile")
async def save_profile(ctx: Student) -> Response:
    form = await ctx.form()
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in PROFILE_FIELDS}
    values["skills"] = [s.strip() for s in str(form.get("skills", "")).split(",") if s.strip()]
    values["consent_to_data_use"] = form.get("consent_to_data_use") == "yes"
    body: dict[str, Any] = {k: v for k, v in values.items() if v not in ("", None)}
    body["consent_to_data_use"] = values["consent_to_data_use"]
    assert ctx.session is not None
    body["email"] = ctx.session["email"]  # the address they sign in with
    before = await own_profile(ctx)
    # The profile is replaced as a whole: keep the university it (or the roster) names.
    university = (before or {}).get("university") or (await invitation(ctx)).get("university")
    if university:
        body["university"] = university
    try:
        body["graduation_year"] = int(values["graduation_year"])
    except ValueError:
        body.pop("graduation_year", None)
    try:
        saved = await ctx.api.put("applications", f"/students/{ctx.sub}", body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await ctx.render(
            "student/profile.html",
            status=422,
            values=values,
            problems=problems.describe_all(exc, problems.PROFILE),
            new=before is None,
        )
    language = values["preferred_language"] or ctx.language
    time_zone = saved.get("time_zone") or ctx.session.get("time_zone")
    await ctx.store.update_session(
        ctx.session["_id"], {"language": language, "display": body["name"], "time_zone": time_zone}
    )
    ctx.cookies.append((LANGUAGE_COOKIE, language, 365 * 24 * 3600))
    i18n.use(language, time_zone)
    withdrawn = (
        bool(before and before.get("consent_to_data_use")) and not body["consent_to_data_use"]
    )
    await ctx.flash("consent_withdrawn" if withdrawn else "profile_saved")
    return ctx.redirect("/student/profile")


async def open_positions(ctx: Ctx) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    cohorts = {c["id"]: c for c in await ctx.api.get("applications", "/cohorts")}
    companies = by_id(await ctx.api.get("applications", "/companies/directory"))
    positions = [
        p
        for p in await ctx.api.get("applications", "/positions", state="open")
        if cohorts.get(p["cohort_id"], {}).get("state") == "open"
    ]
    for p in positions:
        company = companies.get(p["company_id"], {})
        p["company"] = company_name(company, ctx.language)
        p["sector"] = company.get("sector")
    return positions, cohorts


def draft_of(ctx: Ctx) -> dict[str, Any]:
    return dict((ctx.session or {}).get("draft") or {"cohort_id": None, "position_ids": []})


@router.get("/positions")
async def positions(ctx: Student) -> Response:
    rows, _cohorts = await open_positions(ctx)
    query = params(ctx)

    def jlpt_ok(p: dict[str, Any], level: str) -> bool:
        # "My level is N3": positions asking N3 or less, or nothing.
        return not p.get("min_jlpt") or JLPT_STRENGTH[p["min_jlpt"]] <= JLPT_STRENGTH.get(level, 0)

    view = list_view(
        rows,
        query,
        sorts={
            "title": lambda p: p["title"],
            "company": lambda p: p["company"],
            "start": lambda p: p["start_date"],
            "seats": lambda p: p["capacity"],
        },
        default_sort="start",
        filters={
            "q": lambda p, v: (
                contains(p["title"], v)
                or contains(p["company"], v)
                or any(contains(s, v) for s in p.get("required_skills", []))
            ),
            "sector": lambda p, v: p.get("sector") == v,
            "track": lambda p, v: p["track"] == v,
            "jlpt": jlpt_ok,
            "paid": lambda p, v: str(p["paid"]).lower() == v,
            "from": lambda p, v: p["start_date"] >= v,
            "to": lambda p, v: p["end_date"] <= v,
        },
        page_size=ctx.settings.page_size,
    )
    draft = draft_of(ctx)
    return await ctx.render("student/positions.html", view=view, chosen=draft["position_ids"])


@router.post("/application/add")
async def add_choice(ctx: Student) -> Response:
    form = await ctx.form()
    position_id = str(form.get("position_id", ""))
    rows, _ = await open_positions(ctx)
    position = next((p for p in rows if p["id"] == position_id), None)
    if position is None:
        return ctx.redirect("/student/positions")
    draft = await current_draft(ctx)
    if draft["cohort_id"] not in (None, position["cohort_id"]):
        draft = {"cohort_id": position["cohort_id"], "position_ids": [], "motivation": ""}
    draft["cohort_id"] = position["cohort_id"]
    if position_id not in draft["position_ids"] and len(draft["position_ids"]) < MAX_CHOICES:
        draft["position_ids"].append(position_id)
    await save_draft(ctx, draft)
    await ctx.flash("application_added", title=position["title"])
    back = str(form.get("back", ""))
    return ctx.redirect(back if back.startswith("/student/positions") else "/student/positions")


async def current_draft(ctx: Ctx) -> dict[str, Any]:
    """The list being built: kept in the session; starts from the sent application if any."""
    draft = draft_of(ctx)
    if draft.get("position_ids") or draft.get("cohort_id"):
        return draft
    active = await active_application(ctx)
    if active is not None and "edit" in active["allowed_actions"]:
        return {
            "cohort_id": active["cohort_id"],
            "position_ids": list(active["ranked_position_ids"]),
            "motivation": active.get("motivation", ""),
        }
    return {"cohort_id": None, "position_ids": [], "motivation": ""}


async def save_draft(ctx: Ctx, draft: dict[str, Any]) -> None:
    assert ctx.session is not None
    ctx.session["draft"] = draft
    await ctx.store.update_session(ctx.session["_id"], {"draft": draft})


@router.get("/application")
async def application(ctx: Student) -> Response:
    return await render_application(ctx, await current_draft(ctx), unsaved=False)


async def render_application(
    ctx: Ctx,
    draft: dict[str, Any],
    *,
    unsaved: bool,
    found: list[problems.Problem] | None = None,
    status: int = 200,
) -> Response:
    rows, cohorts = await open_positions(ctx)
    positions = {p["id"]: p for p in rows}
    profile = await own_profile(ctx)
    active = await active_application(ctx, draft.get("cohort_id"))
    chosen = [positions[i] for i in draft["position_ids"] if i in positions]
    return await ctx.render(
        "student/application.html",
        status=status,
        chosen=chosen,
        draft=draft,
        cohort=cohorts.get(draft.get("cohort_id") or ""),
        profile=profile,
        active=active,
        unsaved=unsaved,
        problems=found or [],
    )


@router.post("/application")
async def change_application(ctx: Student) -> Response:
    form = await ctx.form()
    draft = await current_draft(ctx)
    draft["position_ids"] = keep_known(
        [str(v) for v in form.getlist("order")], draft["position_ids"]
    )
    draft["motivation"] = str(form.get("motivation", draft.get("motivation", "")))[:4000]
    action = str(form.get("action", "send"))
    if action == "withdraw":
        return await withdraw(ctx)
    if action != "send":
        move, _, position_id = action.partition(":")
        draft["position_ids"] = reorder(draft["position_ids"], position_id, move)
        await save_draft(ctx, draft)
        return await render_application(ctx, draft, unsaved=True)
    await save_draft(ctx, draft)
    body = {"ranked_position_ids": draft["position_ids"], "motivation": draft["motivation"]}
    active = await active_application(ctx, draft.get("cohort_id"))
    try:
        if active is None:
            await ctx.api.post(
                "applications", "/applications", {"cohort_id": draft["cohort_id"], **body}
            )
        else:
            await ctx.api.put("applications", f"/applications/{active['id']}", body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        found = problems.describe_all(exc, problems.APPLICATION)
        return await render_application(ctx, draft, unsaved=True, found=found, status=422)
    await save_draft(ctx, {"cohort_id": None, "position_ids": [], "motivation": ""})
    await ctx.flash("application_sent", count=len(body["ranked_position_ids"]))
    return ctx.redirect("/student")


async def withdraw(ctx: Ctx) -> Response:
    active = await active_application(ctx, draft_of(ctx).get("cohort_id"))
    if active is None:
        return ctx.redirect("/student")
    return ctx.redirect(f"/student/applications/{active['id']}/withdraw")


@router.get("/applications/{application_id}/withdraw")
async def confirm_withdrawal(ctx: Student, application_id: str) -> Response:
    application = await ctx.api.get("applications", f"/applications/{application_id}")
    cohort = await ctx.api.get("applications", f"/cohorts/{application['cohort_id']}")
    return await ctx.render("student/withdraw.html", application=application, cohort=cohort)


@router.post("/applications/{application_id}/withdraw")
async def withdraw_application(ctx: Student, application_id: str) -> Response:
    form = await ctx.form()
    if form.get("confirmed") != "yes":
        return ctx.redirect(f"/student/applications/{application_id}/withdraw")
    await ctx.api.delete("applications", f"/applications/{application_id}")
    await save_draft(ctx, {"cohort_id": None, "position_ids": [], "motivation": ""})
    await ctx.flash("application_withdrawn")
    return ctx.redirect("/student")


@router.get("/proposals/{proposal_id}")
async def proposal(ctx: Student, proposal_id: str) -> Response:
    proposal = await ctx.api.get("matching", f"/proposals/{proposal_id}")
    position = await ctx.api.get("applications", f"/positions/{proposal['position_id']}")
    companies = by_id(await ctx.api.get("applications", "/companies/directory"))
    placements = [
        p for p in await ctx.api.get("matching", "/placements") if p["proposal_id"] == proposal_id
    ]
    return await ctx.render(
        "student/proposal.html",
        proposal=proposal,
        position=position,
        company=companies.get(proposal["company_id"], {}),
        placement=placements[0] if placements else None,
        pending=can_answer(proposal),
    )


def answer_back(proposal_id: str, asked: str | None) -> str:
    """Where an answer (or going back from declining) returns: the page it was given on."""
    proposal_page = f"/student/proposals/{proposal_id}"
    return asked if asked in ("/student", proposal_page) else proposal_page


@router.get("/proposals/{proposal_id}/decline")
async def confirm_decline(ctx: Student, proposal_id: str) -> Response:
    """Declining cannot be taken back: it is asked once more, on a page of its own (a plain
    link and form, no script needed), saying what it means."""
    back = answer_back(proposal_id, ctx.request.query_params.get("back"))
    proposal = await ctx.api.get("matching", f"/proposals/{proposal_id}")
    if not can_answer(proposal):
        return ctx.redirect(f"/student/proposals/{proposal_id}")
    position = await ctx.api.get("applications", f"/positions/{proposal['position_id']}")
    companies = by_id(await ctx.api.get("applications", "/companies/directory"))
    return await ctx.render(
        "student/decline.html",
        proposal=proposal,
        position=position,
        company=companies.get(proposal["company_id"], {}),
        back=back,
    )


@router.post("/proposals/{proposal_id}/{answer}")
async def answer(ctx: Student, proposal_id: str, answer: str) -> Response:
    form = await ctx.form()
    back = answer_back(proposal_id, str(form.get("back", "")))
    if answer not in ("accept", "decline"):
        return ctx.redirect(back)
    if answer == "decline" and form.get("confirmed") != "yes":
        query = urlencode({"back": back})
        return ctx.redirect(f"/student/proposals/{proposal_id}/decline?{query}")
    await ctx.api.post("matching", f"/proposals/{proposal_id}/{answer}")
    await ctx.flash("proposal_accepted" if answer == "accept" else "proposal_declined_student")
    return ctx.redirect(back)


@router.get("/erase")
async def erase_form(ctx: Student) -> Response:
    return await ctx.render("student/erase.html")


@router.post("/erase")
async def erase(ctx: Student) -> Response:
    await ctx.form()
    try:
        await ctx.api.delete("applications", f"/students/{ctx.sub}")
    except ApiError as exc:
        if exc.status != 404:  # no profile yet: nothing stored there
            raise
    await ctx.store.forget(PortalRole.STUDENT, ctx.sub)
    ctx.session = None
    ctx.cookies.append((SESSION_COOKIE, "", 0))
    return await ctx.render("student/erased.html")
