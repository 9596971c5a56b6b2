"""The university office: its students and where each stands (read-only), and the roster."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.portal import roster as roster_rules
from services.portal.domain import (
    ROSTER_MAX_BYTES,
    PortalRole,
    Roster,
    contains,
    holders,
    list_view,
    normalise_email,
    parse_roster,
)
from services.portal.pages.common import REPORT_TABLES, by_id, params, report_file
from services.portal.web import Ctx, role_ctx
from shared.documents import utcnow
from shared.ids import new_id

log = logging.getLogger(__name__)
router = APIRouter(prefix="/university")
University = Annotated[Ctx, Depends(role_ctx(PortalRole.UNIVERSITY))]

# Where a student stands now, in the order the list sorts by: the stage of the application
# that has gone furthest (a placement, a proposal waiting for answers, one still in the rounds,
# then one whose proposal ended, and last one withdrawn). A student who declined reads
# "declined", not "applied" beside it; they stay in later rounds for their other choices.
STAGES = (
    "invited",
    "profile",
    "withdrawn",
    "cancelled",
    "expired",
    "declined",
    "not_matched",
    "applied",
    "proposed",
    "placed",
)
STAGE_OF_STATE = {
    "placed": "placed",
    "proposed": "proposed",
    "submitted": "applied",
    "not_matched": "not_matched",
    "declined": "declined",
    "expired": "expired",
    "cancelled": "cancelled",
    "withdrawn": "withdrawn",
}


def stage(student: dict[str, Any]) -> str:
    """The stage of the student's application that has gone furthest (the applications
    service keeps each one's status from the matching service's events)."""
    reached = [
        STAGE_OF_STATE[a["state"]]
        for a in student.get("applications", [])
        if a["state"] in STAGE_OF_STATE
    ]
    if reached:
        return max(reached, key=STAGES.index)
    return "profile" if student.get("department") else "invited"


@router.get("")
async def students(ctx: University) -> Response:
    return await render(ctx, roster=None)


async def render(ctx: Ctx, roster: Roster | None, status: int = 200) -> Response:
    # The applications service answers with this office's own university's students only.
    profiles = await ctx.api.get("applications", "/students")
    known = {s["id"] for s in profiles}
    rows = [{**s, "stage": stage(s)} for s in profiles]
    # Invited from this office's roster but not yet signed in to fill a profile.
    assert ctx.session is not None
    university = ctx.session.get("university")
    invited = [
        user
        for user in await ctx.store.list_users(PortalRole.STUDENT)
        if user.get("invited_at") and user.get("university") == university
    ]
    for user in invited:
        if user["sub"] in known:
            continue
        rows.append(
            {
                "id": user["sub"],
                "name": user.get("name"),
                "email": user["_id"],
                "department": user.get("department"),
                "applications": [],
                "stage": "invited",
                "invited": True,
            }
        )
    view = list_view(
        rows,
        params(ctx),
        sorts={
            "name": lambda s: s.get("name"),
            "department": lambda s: s.get("department"),
            "stage": lambda s: STAGES.index(s["stage"]),
        },
        default_sort="name",
        filters={
            "q": lambda s, v: contains(s.get("name"), v) or contains(s.get("email"), v),
            "department": lambda s, v: contains(s.get("department"), v),
            "stage": lambda s, v: s["stage"] == v,
        },
        page_size=ctx.settings.page_size,
    )
    return await ctx.render(
        "university/students.html",
        status=status,
        view=view,
        stages=STAGES,
        roster=roster,
        university=university,
        invitations=roster_rules.invitation_progress(invited),
        cohorts=by_id(await ctx.api.get("applications", "/cohorts")),
    )


@router.get("/students/{student_id}")
async def student(ctx: University, student_id: str) -> Response:
    """One of the office's students (read-only); another university's is "not found"."""
    profile = await ctx.api.get("applications", f"/students/{student_id}")
    listed = await ctx.api.get("applications", "/students")
    applications: list[dict[str, Any]] = next(
        (s["applications"] for s in listed if s["id"] == student_id), []
    )
    cohorts = {c["id"]: c for c in await ctx.api.get("applications", "/cohorts")}
    return await ctx.render(
        "university/student.html",
        student=profile,
        applications=applications,
        cohorts=cohorts,
        stage=stage({**profile, "applications": applications}),
    )


@router.get("/reports")
async def reports(ctx: University) -> Response:
    """The cohorts' reports, to download: the matching service puts in a university office's
    report its own students only (the portal's token for the office names its university)."""
    cohorts = await ctx.api.get("applications", "/cohorts")
    cohorts.sort(key=lambda c: c["application_opens"], reverse=True)
    assert ctx.session is not None
    return await ctx.render(
        "university/reports.html",
        cohorts=cohorts,
        report_tables=REPORT_TABLES,
        university=ctx.session.get("university"),
    )


@router.get("/cohorts/{cohort_id}/report.xlsx")
async def report_workbook(ctx: University, cohort_id: str) -> Response:
    return await report_file(ctx, cohort_id, None)


@router.get("/cohorts/{cohort_id}/report/{table}.csv")
async def report_table(ctx: University, cohort_id: str, table: str) -> Response:
    return await report_file(ctx, cohort_id, table)


async def company_contacts(ctx: Ctx) -> set[str]:
    """The addresses of live company registrations (one call: companies are few; a roster
    has up to 2,000 rows)."""
    companies = await ctx.services.as_portal().get("applications", "/companies")
    found = holders(None, companies)  # the live ones
    live = {holder.sub for holder in found}
    return {
        address
        for company in companies
        if company["id"] in live
        for address in [normalise_email(str(company["contact"]["email"]))]
        if address
    }


@router.post("/roster")
async def upload_roster(ctx: University) -> Response:
    """Validates the rows and stores the new students as invited, then answers; the
    invitations are mailed in the background (services/portal/invitations.py)."""
    form = await ctx.form()
    upload = form.get("roster")
    if not isinstance(upload, UploadFile):
        return await render(ctx, roster=Roster([], [(0, roster_rules.NO_FILE)]), status=422)
    data = await upload.read(ROSTER_MAX_BYTES + 1)
    if len(data) > ROSTER_MAX_BYTES:
        return await render(ctx, roster=Roster([], [(0, "too_many_rows")]), status=422)
    try:
        roster = parse_roster(roster_rules.decode_roster(data))
    except roster_rules.Unreadable as exc:
        return await render(ctx, roster=Roster([], [(0, exc.problem)]), status=422)
    refused = bool(roster.errors)  # rows that are wrong, not merely known already
    assert ctx.session is not None
    batch, now = new_id("roster"), utcnow()
    existing = await ctx.store.find_users(row.email for row in roster.rows)
    contacts = await company_contacts(ctx)
    new: list[dict[str, Any]] = []
    for row in roster.rows:
        reason = roster_rules.skip_reason(existing.get(row.email), row.email in contacts)
        if reason:
            roster.errors.append((row.line, reason))
            continue
        new.append(
            {
                "_id": row.email,
                "role": PortalRole.STUDENT.value,
                "sub": new_id("stu"),
                "created_at": now,
                "name": row.name,
                "department": row.department,
                "university": ctx.session.get("university"),
                "invited_at": now,
                "invited_by": ctx.sub,
                "invitation_batch": batch,
                "invitation_state": roster_rules.WAITING,
                "invitation_retry_at": now,
            }
        )
    invited = await ctx.store.add_users(new)
    if invited:
        ctx.request.app.state.invitations.wake()
    log.info("roster uploaded", extra={"invited": invited, "batch": batch})
    roster.errors.sort()
    await ctx.flash("roster_uploaded", count=invited)
    if roster.errors:
        return await render(ctx, roster=roster, status=422 if refused else 200)
    return ctx.redirect("/university")
