"""The university office: its students and where each stands (read-only), and the roster."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.portal.domain import (
    ROSTER_MAX_BYTES,
    PortalRole,
    Roster,
    contains,
    list_view,
    parse_roster,
)
from services.portal.pages.common import REPORT_TABLES, by_id, params, report_file
from services.portal.web import Ctx, role_ctx
from shared.ids import new_id

log = logging.getLogger(__name__)
router = APIRouter(prefix="/university")
University = Annotated[Ctx, Depends(role_ctx(PortalRole.UNIVERSITY))]

# Where a student stands, from the furthest step reached.
STAGES = ("invited", "profile", "applied", "proposed", "placed")
STAGE_OF_STATE = {
    "placed": "placed",
    "proposed": "proposed",
    "submitted": "applied",
    "not_matched": "applied",
    "declined": "applied",
    "expired": "applied",
    "cancelled": "applied",
}


def stage(student: dict[str, Any]) -> str:
    """The furthest step of any of the student's applications (the applications service keeps
    each one's status from the matching service's events)."""
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
    for user in await ctx.store.list_users(PortalRole.STUDENT):
        if user["sub"] in known or not user.get("invited_at"):
            continue
        if user.get("university") != university:
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


@router.post("/roster")
async def upload_roster(ctx: University) -> Response:
    form = await ctx.form()
    upload = form.get("roster")
    if not isinstance(upload, UploadFile):
        return await render(ctx, roster=Roster([], [(0, "missing_columns")]), status=422)
    data = await upload.read(ROSTER_MAX_BYTES + 1)
    if len(data) > ROSTER_MAX_BYTES:
        return await render(ctx, roster=Roster([], [(0, "too_many_rows")]), status=422)
    roster = parse_roster(data.decode("utf-8", errors="replace"))
    invited = 0
    url = f"{ctx.settings.public_base_url.rstrip('/')}/sign-in?next=/student/profile"
    assert ctx.session is not None
    for row in roster.rows:
        existing = await ctx.store.find_user(row.email)
        if existing is not None:
            continue  # already registered or invited: no second invitation
        await ctx.store.add_user(
            row.email,
            PortalRole.STUDENT,
            new_id("stu"),
            name=row.name,
            department=row.department,
            university=ctx.session.get("university"),
            invited_at=ctx.session["last_seen"],
            invited_by=ctx.sub,
        )
        invited += 1
        task = asyncio.create_task(invite(ctx, row.email, row.name, url))
        ctx.request.app.state.background.add(task)
        task.add_done_callback(ctx.request.app.state.background.discard)
    await ctx.flash("roster_uploaded", count=invited)
    if roster.errors:
        return await render(ctx, roster=roster, status=422)
    return ctx.redirect("/university")


async def invite(ctx: Ctx, email: str, name: str, url: str) -> None:
    try:
        # Students read the program in Traditional Chinese by default.
        await ctx.request.app.state.mailer.send_invitation(email, name, "zh-TW", url)
    except Exception:
        log.exception("invitation could not be sent")
