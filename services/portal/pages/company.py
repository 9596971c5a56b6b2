"""The host company: profile, positions, applicants and their ranking, proposals, interns."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.portal import i18n, problems
from services.portal.clients import ApiError
from services.portal.domain import (
    PENDING_PROPOSAL,
    PortalRole,
    can_answer,
    contains,
    keep_known,
    list_view,
    normalise_email,
    reorder,
)
from services.portal.i18n import N_
from services.portal.pages.common import by_id, params
from services.portal.web import LANGUAGE_COOKIE, SESSION_COOKIE, Ctx, role_ctx

router = APIRouter(prefix="/company")
Company = Annotated[Ctx, Depends(role_ctx(PortalRole.COMPANY))]
POSITION_FIELDS = (
    "cohort_id",
    "title",
    "description",
    "track",
    "capacity",
    "min_jlpt",
    "min_english",
    "start_date",
    "end_date",
    "location",
)
OPEN_FOR_POSITIONS = ("draft", "open")
CONTACT_FIELDS = ("name", "email", "preferred_language", "time_zone")


@router.get("")
async def overview(ctx: Company) -> Response:
    company = await ctx.api.get("applications", f"/companies/{ctx.sub}")
    positions = await ctx.api.get("applications", "/positions")
    proposals = await ctx.api.get("matching", "/proposals")
    placements = await ctx.api.get("matching", "/placements")
    waiting = [p for p in proposals if can_answer(p)]
    titles = {p["id"]: p["title"] for p in positions}
    names = await applicant_names(ctx, {p["position_id"] for p in proposals} & set(titles))
    view = list_view(
        proposals,
        params(ctx),
        sorts={
            "position": lambda p: titles.get(p["position_id"]),
            "status": lambda p: p["status"],
            "respond_by": lambda p: p["respond_by"],
        },
        default_sort="respond_by",
        filters={"status": lambda p, v: p["status"] == v},
        page_size=ctx.settings.page_size,
        newest_first=True,
    )
    return await ctx.render(
        "company/overview.html",
        company=company,
        positions=positions,
        view=view,
        waiting=waiting,
        placements=placements,
        titles=titles,
        names=names,
    )


async def applicant_names(ctx: Ctx, position_ids: set[str]) -> dict[str, str]:
    """The proposed students' names (a company sees them through its positions' applicants):
    people tell two proposals for one position apart by name, not by an id."""
    lists = await asyncio.gather(
        *(ctx.api.get("applications", f"/positions/{pid}/applicants") for pid in position_ids)
    )
    return {a["student_id"]: a["name"] for applicants in lists for a in applicants if a.get("name")}


@router.get("/profile")
async def profile(ctx: Company) -> Response:
    company = await ctx.api.get("applications", f"/companies/{ctx.sub}")
    return await render_profile(ctx, company, values=company["contact"], found=[])


async def render_profile(
    ctx: Ctx,
    company: dict[str, Any],
    *,
    values: dict[str, Any],
    found: list[problems.Problem],
    status: int = 200,
) -> Response:
    return await ctx.render(
        "company/profile.html", status=status, company=company, values=values, problems=found
    )


@router.post("/profile")
async def save_contact(ctx: Company) -> Response:
    """The contact person, the language of the program's messages and the time zone of their
    dates: the company keeps them itself (the other details through the city office)."""
    form = await ctx.form()
    values = {k: str(form.get(k, "")).strip() for k in CONTACT_FIELDS}
    address = normalise_email(values.get("email", ""))
    if address is not None and await ctx.store.find_user(address) is not None:
        # Staff or a student already: one address, one person.
        company = await ctx.api.get("applications", f"/companies/{ctx.sub}")
        found = [problems.address_in_use(problems.CONTACT["email"])]
        return await render_profile(ctx, company, values=values, found=found, status=422)
    try:
        company = await ctx.api.put("applications", f"/companies/{ctx.sub}/contact", values)
    except ApiError as exc:
        if exc.status != 422:
            raise
        company = await ctx.api.get("applications", f"/companies/{ctx.sub}")
        found = problems.describe_all(exc, problems.CONTACT)
        return await render_profile(ctx, company, values=values, found=found, status=422)
    contact = company["contact"]
    assert ctx.session is not None
    new_address = normalise_email(str(contact["email"]))
    if new_address != ctx.session.get("email"):
        # Handed over: the previous contact's sessions (this one too) and links end now; the
        # new contact signs in with their own address.
        await ctx.store.end_sessions(PortalRole.COMPANY, ctx.sub, unless_email=new_address)
        ctx.session = None
        ctx.cookies.append((SESSION_COOKIE, "", 0))
        return await ctx.render("company/contact_handed_over.html", email=new_address)
    language = i18n.parse_language(contact["preferred_language"]) or ctx.language
    await ctx.store.update_session(
        ctx.session["_id"], {"language": language, "time_zone": contact["time_zone"]}
    )
    ctx.cookies.append((LANGUAGE_COOKIE, language, 365 * 24 * 3600))
    i18n.use(language, contact["time_zone"])
    await ctx.flash("contact_saved")
    return ctx.redirect("/company/profile")


@router.get("/positions")
async def positions(ctx: Company) -> Response:
    return await render_positions(ctx, values={}, found=[])


async def render_positions(
    ctx: Ctx, *, values: dict[str, Any], found: list[problems.Problem], status: int = 200
) -> Response:
    rows = await ctx.api.get("applications", "/positions")
    every_cohort = await ctx.api.get("applications", "/cohorts")
    cohorts = [c for c in every_cohort if c["state"] in OPEN_FOR_POSITIONS]
    company = await ctx.api.get("applications", f"/companies/{ctx.sub}")
    view = list_view(
        rows,
        params(ctx),
        sorts={
            "title": lambda p: p["title"],
            "cohort": lambda p: p["cohort_id"],
            "capacity": lambda p: p["capacity"],
            "start": lambda p: p["start_date"],
            "state": lambda p: p["state"],
        },
        default_sort="title",
        filters={
            "state": lambda p, v: p["state"] == v,
            "q": lambda p, v: contains(p["title"], v),
        },
        page_size=ctx.settings.page_size,
    )
    return await ctx.render(
        "company/positions.html",
        status=status,
        view=view,
        cohorts=cohorts,
        cohort_names={c["id"]: c["name"] for c in every_cohort},
        company=company,
        values=values,
        problems=found,
    )


def position_body(form: Any) -> tuple[dict[str, Any], dict[str, Any], list[problems.Problem]]:
    """The form's values as typed, the body for the API, and what is wrong before asking it."""
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in POSITION_FIELDS}
    values["paid"] = str(form.get("paid", ""))
    values["required_skills"] = str(form.get("required_skills", ""))
    body: dict[str, Any] = {k: v for k, v in values.items() if v != "" and k in POSITION_FIELDS}
    body["required_skills"] = [s for s in values["required_skills"].split(",") if s.strip()]
    body["paid"] = values["paid"] == "true"
    try:
        body["capacity"] = int(values["capacity"] or "0")
    except ValueError:
        return (
            values,
            body,
            [problems.local(N_("Seats"), N_("Please enter a whole number."), "capacity")],
        )
    return values, body, []


@router.post("/positions")
async def publish(ctx: Company) -> Response:
    values, body, found = position_body(await ctx.form())
    if found:
        return await render_positions(ctx, values=values, found=found, status=422)
    try:
        position = await ctx.api.post("applications", "/positions", body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        found = problems.describe_all(exc, problems.POSITION)
        return await render_positions(ctx, values=values, found=found, status=422)
    await ctx.flash("position_published", title=position["title"])
    return ctx.redirect(f"/company/positions/{position['id']}")


@router.get("/positions/{position_id}/edit")
async def edit_form(ctx: Company, position_id: str) -> Response:
    position = await ctx.api.get("applications", f"/positions/{position_id}")
    values = {
        **position,
        "paid": "true" if position["paid"] else "false",
        "required_skills": ", ".join(position.get("required_skills") or []),
        "min_jlpt": position.get("min_jlpt") or "",
        "min_english": position.get("min_english") or "",
    }
    return await render_edit(ctx, position, values=values, found=[])


async def render_edit(
    ctx: Ctx,
    position: dict[str, Any],
    *,
    values: dict[str, Any],
    found: list[problems.Problem],
    status: int = 200,
) -> Response:
    cohort = await ctx.api.get("applications", f"/cohorts/{position['cohort_id']}")
    return await ctx.render(
        "company/position_edit.html",
        status=status,
        position=position,
        cohort=cohort,
        values=values,
        problems=found,
    )


@router.post("/positions/{position_id}/edit")
async def edit(ctx: Company, position_id: str) -> Response:
    position = await ctx.api.get("applications", f"/positions/{position_id}")
    form = await ctx.form()
    values, body, found = position_body(form)
    body["cohort_id"] = values["cohort_id"] = position["cohort_id"]  # a position stays in it
    if found:
        return await render_edit(ctx, position, values=values, found=found, status=422)
    try:
        changed = await ctx.api.put("applications", f"/positions/{position_id}", body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        found = problems.describe_all(exc, problems.POSITION)
        return await render_edit(ctx, position, values=values, found=found, status=422)
    await ctx.flash("position_edited", title=changed["title"])
    return ctx.redirect(f"/company/positions/{position_id}")


@router.get("/positions/{position_id}")
async def position(ctx: Company, position_id: str) -> Response:
    position = await ctx.api.get("applications", f"/positions/{position_id}")
    cohort = await ctx.api.get("applications", f"/cohorts/{position['cohort_id']}")
    applicants = await ctx.api.get("applications", f"/positions/{position_id}/applicants")
    return await ctx.render(
        "company/position.html", position=position, cohort=cohort, applicants=applicants
    )


@router.get("/positions/{position_id}/close")
async def confirm_close(ctx: Company, position_id: str) -> Response:
    """Closing cannot be taken back (and cancels the position's pending proposals): asked
    once more on a page of its own."""
    position = await ctx.api.get("applications", f"/positions/{position_id}")
    if "close" not in position["allowed_actions"]:
        return ctx.redirect(f"/company/positions/{position_id}")
    proposals = await ctx.api.get("matching", "/proposals")
    pending = [
        p for p in proposals if p["position_id"] == position_id and p["status"] in PENDING_PROPOSAL
    ]
    return await ctx.render("company/close_position.html", position=position, pending=pending)


@router.post("/positions/{position_id}/close")
async def close(ctx: Company, position_id: str) -> Response:
    form = await ctx.form()
    if form.get("confirmed") != "yes":
        return ctx.redirect(f"/company/positions/{position_id}/close")
    position = await ctx.api.post("applications", f"/positions/{position_id}/close")
    await ctx.flash("position_closed", title=position["title"])
    return ctx.redirect(f"/company/positions/{position_id}")


async def ranking_facts(ctx: Ctx, position_id: str) -> dict[str, Any]:
    position = await ctx.api.get("applications", f"/positions/{position_id}")
    applicants = await ctx.api.get("applications", f"/positions/{position_id}/applicants")
    ranking = await ctx.api.get("applications", f"/positions/{position_id}/ranking")
    return {"position": position, "applicants": applicants, "ranking": ranking}


def initial_order(applicants: list[dict[str, Any]], ranked: list[str]) -> list[str]:
    """The saved ranking first, then applicants not ranked yet (by the student's own rank)."""
    ids = [a["student_id"] for a in applicants]
    order = keep_known(ranked, ids)
    rest = sorted(
        (a for a in applicants if a["student_id"] not in order),
        key=lambda a: (a["student_rank"], a.get("name") or ""),
    )
    return order + [a["student_id"] for a in rest]


@router.get("/positions/{position_id}/applicants")
async def applicants(ctx: Company, position_id: str) -> Response:
    facts = await ranking_facts(ctx, position_id)
    order = initial_order(facts["applicants"], facts["ranking"]["ranked_student_ids"])
    return await render_ranking(ctx, facts, order, unsaved=False)


async def render_ranking(
    ctx: Ctx, facts: dict[str, Any], order: list[str], *, unsaved: bool, status: int = 200
) -> Response:
    people = {a["student_id"]: a for a in facts["applicants"]}
    saved = set(facts["ranking"]["ranked_student_ids"])
    return await ctx.render(
        "company/applicants.html",
        status=status,
        ranked=[people[s] for s in order],
        # Applicants the saved ranking does not name yet (all of them on a first visit):
        # the company must see that their place in the list is not saved.
        not_ranked={s for s in order if s not in saved},
        unsaved=unsaved,
        **facts,
    )


@router.post("/positions/{position_id}/applicants")
async def rank(ctx: Company, position_id: str) -> Response:
    form = await ctx.form()
    facts = await ranking_facts(ctx, position_id)
    known = [a["student_id"] for a in facts["applicants"]]
    order = keep_known([str(v) for v in form.getlist("order")], known)
    order += [s for s in initial_order(facts["applicants"], order) if s not in order]
    action = str(form.get("action", "save"))
    if action != "save":
        # "up:<id>" or "down:<id>": the keyboard (and no-JavaScript) way to reorder.
        move, _, student_id = action.partition(":")
        return await render_ranking(ctx, facts, reorder(order, student_id, move), unsaved=True)
    try:
        await ctx.api.put(
            "applications", f"/positions/{position_id}/ranking", {"ranked_student_ids": order}
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        facts["problems"] = problems.describe_all(exc, problems.RANKING)
        return await render_ranking(ctx, facts, order, unsaved=True, status=422)
    await ctx.flash("ranking_saved", count=len(order))
    return ctx.redirect(f"/company/positions/{position_id}/applicants")


async def applicant_or_erased(ctx: Ctx, proposal: dict[str, Any]) -> dict[str, Any]:
    """The proposed student as an applicant to the position; empty once they were erased."""
    try:
        return await ctx.api.get(  # type: ignore[no-any-return]
            "applications",
            f"/positions/{proposal['position_id']}/applicants/{proposal['student_id']}",
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
        return {}


@router.get("/proposals/{proposal_id}")
async def proposal(ctx: Company, proposal_id: str) -> Response:
    proposal = await ctx.api.get("matching", f"/proposals/{proposal_id}")
    position = await ctx.api.get("applications", f"/positions/{proposal['position_id']}")
    applicant = await applicant_or_erased(ctx, proposal)
    return await ctx.render(
        "company/proposal.html",
        proposal=proposal,
        position=position,
        applicant=applicant,
        pending=can_answer(proposal),
    )


@router.get("/proposals/{proposal_id}/decline")
async def confirm_decline(ctx: Company, proposal_id: str) -> Response:
    """Declining cannot be taken back: it is asked once more, on a page of its own (a plain
    link and form, no script needed), saying what it means."""
    proposal = await ctx.api.get("matching", f"/proposals/{proposal_id}")
    if not can_answer(proposal):
        return ctx.redirect(f"/company/proposals/{proposal_id}")
    position = await ctx.api.get("applications", f"/positions/{proposal['position_id']}")
    applicant = await applicant_or_erased(ctx, proposal)
    return await ctx.render(
        "company/decline.html", proposal=proposal, position=position, applicant=applicant
    )


@router.post("/proposals/{proposal_id}/{answer}")
async def answer(ctx: Company, proposal_id: str, answer: str) -> Response:
    form = await ctx.form()
    if answer not in ("accept", "decline"):
        return ctx.redirect(f"/company/proposals/{proposal_id}")
    if answer == "decline" and form.get("confirmed") != "yes":
        return ctx.redirect(f"/company/proposals/{proposal_id}/decline")
    await ctx.api.post("matching", f"/proposals/{proposal_id}/{answer}")
    await ctx.flash("proposal_accepted" if answer == "accept" else "proposal_declined")
    return ctx.redirect(f"/company/proposals/{proposal_id}")


@router.get("/placements")
async def placements(ctx: Company) -> Response:
    rows = await ctx.api.get("matching", "/placements")
    positions = by_id(await ctx.api.get("applications", "/positions"))
    interns = {}
    for p in rows:
        try:
            interns[p["id"]] = await ctx.api.get(
                "applications", f"/positions/{p['position_id']}/applicants/{p['student_id']}"
            )
        except ApiError:
            interns[p["id"]] = {}  # erased since
    view = list_view(
        rows,
        params(ctx),
        sorts={
            "start": lambda p: p["start_date"],
            "confirmed": lambda p: p["confirmed_at"],
            "intern": lambda p: interns[p["id"]].get("name"),
        },
        default_sort="start",
        page_size=ctx.settings.page_size,
    )
    return await ctx.render(
        "company/placements.html", view=view, positions=positions, interns=interns
    )
