"""The city coordinator: cohorts, host companies, rounds, proposals, placements, e-mail."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.portal.clients import ApiError
from services.portal.domain import PortalRole, cohort_actions, contains, list_view, safe_next
from services.portal.labels import company_name
from services.portal.pages.common import by_id, local_input_to_utc, params
from services.portal.web import Ctx, role_ctx

router = APIRouter(prefix="/coordinator")
Coordinator = Annotated[Ctx, Depends(role_ctx(PortalRole.COORDINATOR))]
TABS = ("overview", "positions", "proposals", "placements")


@router.get("")
async def dashboard(ctx: Coordinator) -> Response:
    return await render_dashboard(ctx, values={}, problems={})


async def render_dashboard(
    ctx: Ctx, *, values: dict[str, str], problems: dict[str, str], status: int = 200
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
    return await ctx.render(
        "coordinator/dashboard.html",
        status=status,
        view=view,
        waiting=waiting,
        values=values,
        problems=problems,
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
        return await render_dashboard(ctx, values=values, problems=exc.reasons(), status=422)
    await ctx.flash("cohort_created", cohort=values["id"])
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
    statistics = await ctx.api.get("matching", f"/cohorts/{cohort_id}/statistics")
    return {
        "cohort": cohort,
        "positions": positions,
        "applications": applications,
        "companies": companies,
        "rounds": rounds,
        "statistics": statistics,
        "position_states": Counter(p["state"] for p in positions),
        "application_states": Counter(a["state"] for a in applications),
        "seats": sum(p["capacity"] for p in positions if p["state"] == "open"),
        "actions": cohort_actions(cohort["state"], len(rounds)),
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
            },
            default_sort="confirmed",
            page_size=ctx.settings.page_size,
        )
    return await ctx.render(
        "coordinator/cohort.html",
        status=status,
        tab=tab,
        view=view,
        students=students,
        positions_by_id=positions,
        preview=preview,
        **facts,
    )


@router.post("/cohorts/{cohort_id}/preview")
async def preview_round(ctx: Coordinator, cohort_id: str) -> Response:
    await ctx.form()
    preview = await ctx.api.post("matching", "/rounds/preview", {"cohort_id": cohort_id})
    return await render_cohort(ctx, cohort_id, preview=preview)


@router.post("/cohorts/{cohort_id}/round")
async def run_round(ctx: Coordinator, cohort_id: str) -> Response:
    await ctx.form()
    result = await ctx.api.post("matching", "/rounds", {"cohort_id": cohort_id})
    await ctx.flash("round_run", round=result["number"], count=len(result.get("pairs", [])))
    return ctx.redirect(f"/coordinator/rounds/{result['id']}")


@router.post("/cohorts/{cohort_id}/{action}")
async def transition(ctx: Coordinator, cohort_id: str, action: str) -> Response:
    await ctx.form()
    if action not in ("open", "close", "finish"):
        return ctx.redirect(f"/coordinator/cohorts/{cohort_id}")
    await ctx.api.post("applications", f"/cohorts/{cohort_id}/{action}")
    await ctx.flash(f"cohort_{action}", cohort=cohort_id)
    return ctx.redirect(f"/coordinator/cohorts/{cohort_id}")


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


@router.post("/companies/{company_id}/{decision}")
async def decide(ctx: Coordinator, company_id: str, decision: str) -> Response:
    form = await ctx.form()
    back = safe_next(str(form.get("back", "")), "/coordinator/companies")
    if decision not in ("approve", "reject"):
        return ctx.redirect(back)
    company = await ctx.api.post("applications", f"/companies/{company_id}/{decision}")
    key = "company_approved" if decision == "approve" else "company_rejected"
    await ctx.flash(key, company=company["name_ja"])
    return ctx.redirect(back)


@router.get("/rounds/{round_id}")
async def round_page(ctx: Coordinator, round_id: str) -> Response:
    return await render_round(ctx, round_id, replay=None)


async def render_round(ctx: Ctx, round_id: str, replay: dict[str, Any] | None) -> Response:
    round_ = await ctx.api.get("matching", f"/rounds/{round_id}")
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
    return await ctx.render("coordinator/deliveries.html", view=view, cohorts=cohorts)


@router.post("/deliveries/{message_id}/retry")
async def retry(ctx: Coordinator, message_id: str) -> Response:
    await ctx.form()
    await ctx.api.post("notifications", f"/deliveries/{message_id}/retry")
    await ctx.flash("delivery_retried")
    return ctx.redirect("/coordinator/deliveries?status=failed")
