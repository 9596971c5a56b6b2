"""Small helpers several role pages share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.responses import Response

from services.portal import i18n
from services.portal.i18n import N_
from services.portal.web import Ctx, NotYours


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def local_input_to_utc(value: str) -> str | None:
    """A `datetime-local` field, read in the person's time zone, as an ISO instant."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        return None
    return naive.replace(tzinfo=i18n.zone()).isoformat()


def params(ctx: Ctx) -> dict[str, str]:
    return dict(ctx.request.query_params)


# The tables of a cohort report (the matching service's GET /cohorts/{id}/report/{table}.csv),
# in the order of the workbook's sheets, with their names on the page.
REPORT_TABLES = {
    "applicants": N_("Applicants"),
    "positions": N_("Positions"),
    "rounds": N_("Rounds"),
    "proposals": N_("Proposals and their answers"),
    "placements": N_("Placements"),
    "kpis": N_("Key figures (KPIs)"),
}


async def report_file(ctx: Ctx, cohort_id: str, table: str | None) -> Response:
    """A cohort report from the matching service, fetched with the reader's own token (so a
    university office's holds its own students only) and passed on as the file it is: the
    browser never holds an API token. `table` None is the XLSX workbook, else one CSV table."""
    if table is not None and table not in REPORT_TABLES:
        raise NotYours()
    path = (
        f"/cohorts/{cohort_id}/report.xlsx"
        if table is None
        else f"/cohorts/{cohort_id}/report/{table}.csv"
    )
    file = await ctx.api.download("matching", path, lang=ctx.language)
    response = Response(
        file.content,
        media_type=file.media_type,
        headers={"Content-Disposition": file.disposition},
    )
    # finish(): a report names people, so it is "no-store" like every signed-in page.
    return ctx.finish(response)
