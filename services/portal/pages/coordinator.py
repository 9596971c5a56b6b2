"""The city coordinator: cohorts, host companies, rounds, proposals, placements, e-mail."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.portal import i18n, problems, recipients
from services.portal.clients import ApiError
from services.portal.domain import (
    COMPANY_RIGHTS_END,
    PortalRole,
    RoundOutlook,
    cohort_steps,
    contains,
    list_view,
    normalise_email,
    note_code_valid,
    round_outlook,
    safe_next,
)
from services.portal.i18n import N_
from services.portal.labels import PLACEMENT_CANCEL_CHOICES, company_name
from services.portal.pages.common import (
    REPORT_TABLES,
    by_id,
    local_input_to_utc,
    params,
    report_file,
)
from services.portal.web import Ctx, NotYours, role_ctx

router = APIRouter(prefix="/coordinator")
Coordinator = Annotated[Ctx, Depends(role_ctx(PortalRole.COORDINATOR))]
TABS = ("overview", "positions", "proposals", "placements", "reports")


@router.get("")
async def dashboard(ctx: Coordinator) -> Response:
    return await render_dashboard(ctx, values={}, found=[])


async def render_dashboard(
    ctx: Ctx,
    *,
    values: dict[str, str],
    found: list[problems.Problem],
    status: int = 200,
) -> Response:
    cohorts = await ctx.api.get("applications", "/cohorts")
    companies = await ctx.api.get("applications", "/companies")
    view = list_view(
        cohorts,
        params(ctx),
        sorts={
            "id": lambda c: c["id"],
            "state": lambda c: c["state"],
            "opens": lambda c: c["application_opens"],
            "closes": lambda c: c["application_closes"],
        },
        default_sort="id",
        filters={"state": lambda c, v: c["state"] == v},
        page_size=ctx.settings.page_size,
    )
    waiting = sum(1 for c in companies if c.get("status") == "pending")
    steps = {c["id"]: cohort_steps(c) for c in cohorts}
    outlooks = {
        c["id"]: await outlook_of(ctx, c["id"]) for c in view.items if "run_round" in steps[c["id"]]
    }
    return await ctx.render(
        "coordinator/dashboard.html",
        status=status,
        view=view,
        steps=steps,
        outlooks=outlooks,
        waiting=waiting,
        values=values,
        problems=found,
    )


async def outlook_of(ctx: Ctx, cohort_id: str) -> RoundOutlook:
    """Free seats, unplaced applicants and pending answers of a cohort where a round may run."""
    return round_outlook(
        await ctx.api.get("applications", "/positions", cohort_id=cohort_id),
        await ctx.api.get("applications", "/applications", cohort_id=cohort_id),
        await ctx.api.get("matching", "/proposals", cohort_id=cohort_id),
        await ctx.api.get("matching", "/placements", cohort_id=cohort_id),
    )


@router.post("/cohorts")
async def create_cohort(ctx: Coordinator) -> Response:
    form = await ctx.form()
    values = {k: str(form.get(k, "")).strip() for k in ("id", "name", "opens", "closes")}
    body = {
        "id": values["id"],
        "name": values["name"],
        "application_opens": local_input_to_utc(values["opens"]),
        "application_closes": local_input_to_utc(values["closes"]),
    }
    try:
        await ctx.api.post("applications", "/cohorts", body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        found = problems.describe_all(exc, problems.COHORT)
        return await render_dashboard(ctx, values=values, found=found, status=422)
    await ctx.flash("cohort_created", cohort=values["name"])
    return ctx.redirect(f"/coordinator/cohorts/{values['id']}")


@router.get("/cohorts/{cohort_id}")
async def cohort(ctx: Coordinator, cohort_id: str) -> Response:
    return await render_cohort(ctx, cohort_id)


async def cohort_facts(ctx: Ctx, cohort_id: str) -> dict[str, Any]:
    cohort = await ctx.api.get("applications", f"/cohorts/{cohort_id}")
    positions = await ctx.api.get("applications", "/positions", cohort_id=cohort_id)
    applications = await ctx.api.get("applications", "/applications", cohort_id=cohort_id)
    companies = by_id(await ctx.api.get("applications", "/companies"))
    rounds = await ctx.api.get("matching", "/rounds", cohort_id=cohort_id)
    try:
        statistics = await ctx.api.get("matching", f"/cohorts/{cohort_id}/statistics")
    except ApiError as exc:
        if exc.status != 404:
            raise
        statistics = None  # matching hears of a new cohort a moment after it is created
    return {
        "cohort": cohort,
        "positions": positions,
        "applications": applications,
        "companies": companies,
        "rounds": rounds,
        "rounds_by_id": by_id(rounds),
        "statistics": statistics,
        "position_states": Counter(p["state"] for p in positions),
        "application_states": Counter(a["state"] for a in applications),
        "active_applications": sum(1 for a in applications if a["state"] != "withdrawn"),
        "seats": sum(p["capacity"] for p in positions if p["state"] == "open"),
        "steps": cohort_steps(cohort),
        "outlook": (
            await outlook_of(ctx, cohort_id) if "run_round" in cohort_steps(cohort) else None
        ),
        "pending_companies": [c for c in companies.values() if c.get("status") == "pending"],
    }


async def render_cohort(
    ctx: Ctx, cohort_id: str, *, preview: dict[str, Any] | None = None, status: int = 200
) -> Response:
    facts = await cohort_facts(ctx, cohort_id)
    query = params(ctx)
    tab = query.get("tab") if query.get("tab") in TABS else "overview"
    view = None
    students: dict[str, dict[str, Any]] = {}
    positions = by_id(facts["positions"])
    charts = None
    if tab == "positions":
        companies = facts["companies"]
        view = list_view(
            facts["positions"],
            query,
            sorts={
                "title": lambda p: p["title"],
                "company": lambda p: company_name(companies.get(p["company_id"]), ctx.language),
                "capacity": lambda p: p["capacity"],
                "state": lambda p: p["state"],
                "start": lambda p: p["start_date"],
            },
            default_sort="title",
            filters={
                "state": lambda p, v: p["state"] == v,
                "q": lambda p, v: (
                    contains(p["title"], v)
                    or contains(company_name(companies.get(p["company_id"]), ctx.language), v)
                ),
            },
            page_size=ctx.settings.page_size,
        )
    elif tab in ("proposals", "placements") or preview is not None:
        students = by_id(await ctx.api.get("applications", "/students"))
    if tab == "proposals":
        proposals = await ctx.api.get("matching", "/proposals", cohort_id=cohort_id)
        view = list_view(
            proposals,
            query,
            sorts={
                "student": lambda p: students.get(p["student_id"], {}).get("name"),
                "round": lambda p: p["round_id"],
                "status": lambda p: p["status"],
                "respond_by": lambda p: p["respond_by"],
            },
            default_sort="respond_by",
            filters={"status": lambda p, v: p["status"] == v},
            page_size=ctx.settings.page_size,
        )
    elif tab == "placements":
        placements = await ctx.api.get("matching", "/placements", cohort_id=cohort_id)
        view = list_view(
            placements,
            query,
            sorts={
                "student": lambda p: students.get(p["student_id"], {}).get("name"),
                "confirmed": lambda p: p["confirmed_at"],
                "start": lambda p: p["start_date"],
                "status": lambda p: p["status"],
            },
            default_sort="confirmed",
            filters={"status": lambda p, v: p["status"] == v},
            page_size=ctx.settings.page_size,
        )
    elif tab == "reports":
        charts = await cohort_charts(ctx, cohort_id)
    return await ctx.render(
        "coordinator/cohort.html",
        status=status,
        tab=tab,
        view=view,
        charts=charts,
        report_tables=REPORT_TABLES,
        students=students,
        positions_by_id=positions,
        preview=preview,
        **facts,
    )


async def cohort_charts(ctx: Ctx, cohort_id: str) -> dict[str, Any] | None:
    """The KPI charts (funnel, sectors, time to placement) in the reader's language, or None
    while the matching service does not know the cohort yet."""
    try:
        return await ctx.api.get(  # type: ignore[no-any-return]
            "matching", f"/cohorts/{cohort_id}/charts", lang=ctx.language
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


# Declared before /cohorts/{cohort_id}/{action}, which would take them for a step.
@router.get("/cohorts/{cohort_id}/report.xlsx")
async def report_workbook(ctx: Coordinator, cohort_id: str) -> Response:
    return await report_file(ctx, cohort_id, None)


@router.get("/cohorts/{cohort_id}/report/{table}.csv")
async def report_table(ctx: Coordinator, cohort_id: str, table: str) -> Response:
    return await report_file(ctx, cohort_id, table)


@router.post("/cohorts/{cohort_id}/preview")
async def preview_round(ctx: Coordinator, cohort_id: str) -> Response:
    await ctx.form()
    preview = await ctx.api.post("matching", "/round-preview", {"cohort_id": cohort_id})
    return await render_cohort(ctx, cohort_id, preview=preview)


@router.post("/cohorts/{cohort_id}/round")
async def run_round(ctx: Coordinator, cohort_id: str) -> Response:
    await ctx.form()
    result = await ctx.api.post("matching", "/rounds", {"cohort_id": cohort_id})
    await ctx.flash("round_run", round=result["number"], count=len(result.get("pairs", [])))
    return ctx.redirect(f"/coordinator/rounds/{result['id']}")


# Steps that cannot be taken back are confirmed on a page of their own first (no script needed).
CONFIRMED_STEPS = ("finish",)


@router.get("/cohorts/{cohort_id}/{action}")
async def confirm_transition(ctx: Coordinator, cohort_id: str, action: str) -> Response:
    if action not in CONFIRMED_STEPS:
        raise NotYours()
    cohort = await ctx.api.get("applications", f"/cohorts/{cohort_id}")
    if action not in cohort["allowed_actions"]:
        return ctx.redirect(f"/coordinator/cohorts/{cohort_id}")
    return await ctx.render("coordinator/confirm_finish.html", cohort=cohort)


@router.post("/cohorts/{cohort_id}/{action}")
async def transition(ctx: Coordinator, cohort_id: str, action: str) -> Response:
    form = await ctx.form()
    if action not in ("open", "close", "finish"):
        return ctx.redirect(f"/coordinator/cohorts/{cohort_id}")
    if action in CONFIRMED_STEPS and form.get("confirmed") != "yes":
        return ctx.redirect(f"/coordinator/cohorts/{cohort_id}/{action}")
    before = await ctx.api.get("applications", f"/cohorts/{cohort_id}")
    await ctx.api.post("applications", f"/cohorts/{cohort_id}/{action}")
    key = (
        "cohort_reopen" if action == "open" and before["state"] == "closed" else f"cohort_{action}"
    )
    await ctx.flash(key, cohort=before["name"])
    back = safe_next(str(form.get("back", "")), f"/coordinator/cohorts/{cohort_id}")
    return ctx.redirect(back)


@router.get("/proposals/{proposal_id}/cancel")
async def confirm_cancel_proposal(ctx: Coordinator, proposal_id: str) -> Response:
    proposal = await ctx.api.get("matching", f"/proposals/{proposal_id}")
    return await render_proposal_cancel(ctx, proposal)


async def render_proposal_cancel(ctx: Ctx, proposal: dict[str, Any]) -> Response:
    position = await ctx.api.get("applications", f"/positions/{proposal['position_id']}")
    student = await student_or_none(ctx, proposal["student_id"])
    company = await ctx.api.get("applications", f"/companies/{proposal['company_id']}")
    return await ctx.render(
        "coordinator/cancel_proposal.html",
        proposal=proposal,
        position=position,
        student=student,
        company=company,
    )


@router.post("/proposals/{proposal_id}/cancel")
async def cancel_proposal(ctx: Coordinator, proposal_id: str) -> Response:
    form = await ctx.form()
    if form.get("confirmed") != "yes":
        return ctx.redirect(f"/coordinator/proposals/{proposal_id}/cancel")
    proposal = await ctx.api.post("matching", f"/proposals/{proposal_id}/cancel")
    student = await student_or_none(ctx, proposal["student_id"])
    await ctx.flash("proposal_cancelled", student=person_name(student))
    return ctx.redirect(f"/coordinator/cohorts/{proposal['cohort_id']}?tab=proposals")


@router.get("/placements/{placement_id}/cancel")
async def placement_cancel_form(ctx: Coordinator, placement_id: str) -> Response:
    placement = await ctx.api.get("matching", f"/placements/{placement_id}")
    return await render_placement_cancel(ctx, placement, values={}, found=[])


async def render_placement_cancel(
    ctx: Ctx,
    placement: dict[str, Any],
    *,
    values: dict[str, str],
    found: list[problems.Problem],
    status: int = 200,
) -> Response:
    position = await ctx.api.get("applications", f"/positions/{placement['position_id']}")
    student = await student_or_none(ctx, placement["student_id"])
    company = await ctx.api.get("applications", f"/companies/{placement['company_id']}")
    return await ctx.render(
        "coordinator/cancel_placement.html",
        status=status,
        placement=placement,
        position=position,
        student=student,
        company=company,
        reasons=PLACEMENT_CANCEL_CHOICES,
        values=values,
        problems=found,
    )


@router.post("/placements/{placement_id}/cancel")
async def cancel_placement(ctx: Coordinator, placement_id: str) -> Response:
    form = await ctx.form()
    values = {k: str(form.get(k, "")).strip() for k in ("reason", "note_code")}
    placement = await ctx.api.get("matching", f"/placements/{placement_id}")
    found: list[problems.Problem] = []
    if values["reason"] not in PLACEMENT_CANCEL_CHOICES:
        found.append(
            problems.local(N_("Reason"), N_("Please choose one of the reasons."), "reason")
        )
    if values["note_code"] and not note_code_valid(values["note_code"]):
        found.append(
            problems.local(
                N_("Case file reference (optional)"),
                N_("Use up to 40 letters, digits and . _ / - (no names or other personal data)."),
                "note_code",
            )
        )
    if found:
        return await render_placement_cancel(ctx, placement, values=values, found=found, status=422)
    body = {"reason": values["reason"], "note_code": values["note_code"] or None}
    try:
        await ctx.api.post("matching", f"/placements/{placement_id}/cancel", body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        found = problems.describe_all(exc, problems.PLACEMENT_CANCEL)
        return await render_placement_cancel(ctx, placement, values=values, found=found, status=422)
    student = await student_or_none(ctx, placement["student_id"])
    await ctx.flash("placement_cancelled", student=person_name(student))
    return ctx.redirect(f"/coordinator/cohorts/{placement['cohort_id']}?tab=placements")


def person_name(student: dict[str, Any] | None) -> str:
    """A student as the coordinator knows them (never their id)."""
    return str((student or {}).get("name") or i18n.gettext("a student whose data was erased"))


async def student_or_none(ctx: Ctx, student_id: str) -> dict[str, Any] | None:
    """A student's profile, or None once they have been erased."""
    try:
        return await ctx.api.get("applications", f"/students/{student_id}")  # type: ignore[no-any-return]
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


@router.get("/companies")
async def companies(ctx: Coordinator) -> Response:
    rows = await ctx.api.get("applications", "/companies")
    view = list_view(
        rows,
        params(ctx),
        sorts={
            "name": lambda c: c["name_ja"],
            "sector": lambda c: c["sector"],
            "status": lambda c: c["status"],
            "registered": lambda c: c.get("registered_at"),
        },
        default_sort="registered",
        filters={
            "status": lambda c, v: c["status"] == v,
            "sector": lambda c, v: c["sector"] == v,
            "q": lambda c, v: contains(c["name_ja"], v) or contains(c["name_en"], v),
        },
        page_size=ctx.settings.page_size,
    )
    return await ctx.render("coordinator/companies.html", view=view)


# Rejecting or suspending closes the company's open positions and cancels their pending
# proposals: confirmed on a page of their own first.
DECISIONS = {
    "approve": "company_approved",
    "reject": "company_rejected",
    "suspend": "company_suspended",
}
CONFIRMED_DECISIONS = ("reject", "suspend")


@router.get("/companies/{company_id}/{decision}")
async def confirm_decision(ctx: Coordinator, company_id: str, decision: str) -> Response:
    if decision not in CONFIRMED_DECISIONS:
        raise NotYours()
    company = await ctx.api.get("applications", f"/companies/{company_id}")
    back = safe_next(ctx.request.query_params.get("back"), "/coordinator/companies")
    if decision not in company["allowed_actions"]:
        return ctx.redirect(back)
    positions = await ctx.api.get("applications", "/positions", company_id=company_id, state="open")
    proposals = await ctx.api.get("matching", "/proposals")
    pending = [
        p
        for p in proposals
        if p["company_id"] == company_id and p["status"] in ("proposed", "accepted")
    ]
    return await ctx.render(
        "coordinator/confirm_decision.html",
        company=company,
        decision=decision,
        positions=positions,
        pending=pending,
        cohorts=by_id(await ctx.api.get("applications", "/cohorts")),
        back=back,
    )


CONTACT_IS_SOMEONE_ELSE = N_(
    "The company's contact address already belongs to someone else on the platform (staff or "
    "a student), so the company cannot be approved with it. Reject this registration; the "
    "company may answer the call again with an address of its own."
)


async def contact_is_someone_else(ctx: Ctx, company_id: str) -> bool:
    """One address, one person: the applications service knows only companies' addresses,
    and anyone may answer the public call (through its API too) with anyone's address."""
    company = await ctx.api.get("applications", f"/companies/{company_id}")
    address = normalise_email(str(company["contact"]["email"]))
    return address is not None and await ctx.store.find_user(address) is not None


@router.post("/companies/{company_id}/{decision}")
async def decide(ctx: Coordinator, company_id: str, decision: str) -> Response:
    form = await ctx.form()
    back = safe_next(str(form.get("back", "")), "/coordinator/companies")
    if decision not in DECISIONS:
        return ctx.redirect(back)
    if decision in CONFIRMED_DECISIONS and form.get("confirmed") != "yes":
        query = urlencode({"back": back})
        return ctx.redirect(f"/coordinator/companies/{company_id}/{decision}?{query}")
    if decision == "approve" and await contact_is_someone_else(ctx, company_id):
        return await ctx.render(
            "error.html",
            status=409,
            title=i18n.gettext("That did not work"),
            message=i18n.gettext("Nothing was changed, for this reason:"),
            problems=[problems.Problem(i18n.gettext(CONTACT_IS_SOMEONE_ELSE))],
            home=back,
        )
    company = await ctx.api.post("applications", f"/companies/{company_id}/{decision}")
    if company["status"] in COMPANY_RIGHTS_END:
        # At once, not only when the event reaches the portal's consumer a moment later.
        await ctx.store.end_sessions(PortalRole.COMPANY, company_id)
    closed = len(company.get("closed_position_ids") or [])
    await ctx.flash(DECISIONS[decision], company=company["name_ja"], count=closed)
    return ctx.redirect(back)


@router.get("/rounds/{round_id}")
async def round_page(ctx: Coordinator, round_id: str) -> Response:
    return await render_round(ctx, round_id, replay=None)


async def render_round(ctx: Ctx, round_id: str, replay: dict[str, Any] | None) -> Response:
    round_ = await ctx.api.get("matching", f"/rounds/{round_id}")
    cohort = await ctx.api.get("applications", f"/cohorts/{round_['cohort_id']}")
    exclusions = await ctx.api.get("matching", f"/rounds/{round_id}/exclusions")
    students = by_id(await ctx.api.get("applications", "/students"))
    positions = by_id(
        await ctx.api.get("applications", "/positions", cohort_id=round_["cohort_id"])
    )
    view = list_view(
        exclusions,
        params(ctx),
        sorts={
            "student": lambda e: students.get(e["student_id"], {}).get("name"),
            "position": lambda e: positions.get(e["position_id"], {}).get("title"),
            "reason": lambda e: e["reason"],
        },
        default_sort="student",
        filters={"reason": lambda e, v: e["reason"] == v},
        page_size=ctx.settings.page_size,
    )
    return await ctx.render(
        "coordinator/round.html",
        round=round_,
        cohort=cohort,
        view=view,
        students=students,
        positions=positions,
        replay=replay,
    )


@router.post("/rounds/{round_id}/replay")
async def replay_round(ctx: Coordinator, round_id: str) -> Response:
    await ctx.form()
    replay = await ctx.api.post("matching", f"/rounds/{round_id}/replay")
    return await render_round(ctx, round_id, replay=replay)


@router.get("/deliveries")
async def deliveries(ctx: Coordinator) -> Response:
    query = params(ctx)
    rows = await ctx.api.get(
        "notifications",
        "/deliveries",
        status=query.get("status") or None,
        cohort_id=query.get("cohort") or None,
        limit=1000,
    )
    view = list_view(
        rows,
        query,
        sorts={
            "created": lambda m: m["created_at"],
            "status": lambda m: m["status"],
            "template": lambda m: m["template"],
            "attempts": lambda m: m.get("attempts", 0),
        },
        default_sort="created",
        filters={"q": lambda m, v: contains(m.get("to"), v) or contains(m.get("subject"), v)},
        page_size=ctx.settings.page_size,
        newest_first=True,
    )
    cohorts = await ctx.api.get("applications", "/cohorts")
    return await ctx.render(
        "coordinator/deliveries.html",
        view=view,
        cohorts=cohorts,
        recipients=await recipient_names(ctx, view.items),
    )


async def recipient_names(ctx: Ctx, messages: list[dict[str, Any]]) -> dict[str, str]:
    """Who each message is for, as people know them (a student's or company's name; the
    city office), by recipient id: a mail not sent yet has no address to show, and the id
    means nothing to the reader."""
    kinds = {m.get("recipient_kind") for m in messages}
    names: dict[str, str] = {"coordinator": i18n.gettext("City office")}
    if "student" in kinds:
        for student in await ctx.api.get("applications", "/students"):
            names[student["id"]] = student.get("name") or ""
    if "company" in kinds:
        for company in await ctx.api.get("applications", "/companies"):
            names[company["id"]] = company_name(company, ctx.language)
    return {k: v for k, v in names.items() if v}


@router.post("/deliveries/{message_id}/retry")
async def retry(ctx: Coordinator, message_id: str) -> Response:
    await ctx.form()
    await ctx.api.post("notifications", f"/deliveries/{message_id}/retry")
    await ctx.flash("delivery_retried")
    return ctx.redirect("/coordinator/deliveries?status=failed")


@router.get("/settings")
async def mail_settings(ctx: Coordinator) -> Response:
    """Which program mails the coordinator receives, in which language and time zone. The
    notifications service keeps them; a coordinator it does not know yet is registered now."""
    assert ctx.session is not None
    chosen = await recipients.get(ctx.api, ctx.sub)
    if chosen is None:
        chosen = await recipients.register(
            ctx.api, ctx.sub, ctx.session["email"], time_zone=ctx.session.get("time_zone")
        )
    return await ctx.render("coordinator/settings.html", values=chosen, problems=[])


@router.post("/settings")
async def save_mail_settings(ctx: Coordinator) -> Response:
    assert ctx.session is not None
    form = await ctx.form()
    body = {
        "email": ctx.session["email"],  # the address they sign in with
        "preferred_language": str(form.get("preferred_language", "")),
        "time_zone": str(form.get("time_zone", "")),
        "subscriptions": {k: form.get(k) == "yes" for k in recipients.SUBSCRIPTIONS},
    }
    try:
        await ctx.api.put("notifications", recipients.path(ctx.sub), body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        found = problems.describe_all(exc, problems.CONTACT)
        return await ctx.render(
            "coordinator/settings.html", status=422, values=body, problems=found
        )
    await ctx.flash("mail_settings_saved")
    return ctx.redirect("/coordinator/settings")
