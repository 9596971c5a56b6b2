"""HTTP API of the program's reporting: KPIs per cohort and their trend, the dashboard's
charts, and the cohort reports (CSV and XLSX) for the coordinator and the university office.

The KPIs and charts are aggregates without personal data: the coordinator and the university
office read them. A report names people: the coordinator's holds every applicant, a
university office's only its own students (see services/matching/domain/report.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from services.matching.directory import ApplicantDirectory
from services.matching.domain.report import Reader, Sheet, present, report_tables
from services.matching.domain.statistics import cohort_records
from services.matching.exports import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, to_csv, to_xlsx
from services.matching.store import MatchingStore
from shared import charts
from shared.auth import Principal, Role, require
from shared.bounds import CohortId
from shared.errors import not_found
from shared.events.vocabulary import Language
from shared.kpis import TREND_FIELDS, cohort_kpis, hours_to_placement, trend

ReportReader = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.UNIVERSITY))]
LanguageParam = Annotated[
    Language | None,
    Query(
        alias="lang",
        description="Language of headers and words (zh-TW, ja, en); default: ja for the "
        "coordinator, zh-TW for a university office.",
    ),
]
TableName = Literal["applicants", "positions", "rounds", "proposals", "placements", "kpis"]

# Where each kind of reader reads times (the reports name the zone in every header).
ZONES = {Role.COORDINATOR: "Asia/Tokyo", Role.UNIVERSITY: "Asia/Taipei"}
LANGUAGES = {Role.COORDINATOR: Language.JA, Role.UNIVERSITY: Language.ZH_TW}


def store_of(request: Request) -> MatchingStore:
    return request.app.state.store  # type: ignore[no-any-return]


def directory_of(request: Request) -> ApplicantDirectory:
    return request.app.state.directory  # type: ignore[no-any-return]


Store = Annotated[MatchingStore, Depends(store_of)]
Directory = Annotated[ApplicantDirectory, Depends(directory_of)]

router = APIRouter(tags=["reporting"])


@router.get(
    "/cohorts/{cohort_id}/statistics",
    summary="The cohort's KPIs (README, 'KPIs'); 404 for a cohort matching does not know",
    description="Applications by sector and track, applicants per seat, match, acceptance, "
    "decline and expiry rates, median and 90th percentile hours from application to proposal "
    "and to placement, seats left empty, completion and employment in Kitakyushu: the same "
    "definitions `analytics/` computes from the public events (shared/kpis).",
)
async def cohort_statistics(cohort_id: CohortId, _: ReportReader, store: Store) -> dict[str, Any]:
    return await store.statistics(cohort_id)


@router.get(
    "/kpis/trend",
    summary="The main KPIs per cohort, oldest cohort first: the trend across cohorts",
)
async def kpi_trend(_: ReportReader, store: Store) -> dict[str, Any]:
    return {"fields": list(TREND_FIELDS), "cohorts": trend(await store.all_cohort_records())}


@router.get(
    "/cohorts/{cohort_id}/charts",
    summary="The dashboard's charts of a cohort (Vega-Lite specifications with their figures); "
    "the portal draws them with the shared/charts partial",
)
async def cohort_charts(
    cohort_id: CohortId, principal: ReportReader, store: Store, language: LanguageParam = None
) -> dict[str, Any]:
    records = await store.cohort_records(cohort_id)
    return charts.dashboard(
        cohort_kpis(records),
        hours_to_placement(records),
        language or LANGUAGES[principal.role],
    )


async def report_sheets(
    cohort_id: CohortId,
    principal: Principal,
    request: Request,
    store: MatchingStore,
    directory: ApplicantDirectory,
    language: Language | None,
) -> list[Sheet]:
    docs = await store.cohort_documents(cohort_id)
    students = await directory.students(cohort_id, request.headers["authorization"])
    reader = Reader(students=students, everyone=principal.is_coordinator)
    tables = report_tables(
        reader,
        positions=docs["positions"],
        applications=docs["applications"],
        rounds=docs["rounds"],
        proposals=docs["proposals"],
        placements=docs["placements"],
        kpis=cohort_kpis(cohort_records(**docs)),
    )
    return present(tables, language or LANGUAGES[principal.role], ZONES[principal.role])


def _attachment(content: bytes, media_type: str, file_name: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{file_name}"',
            # A report names people: never kept by a shared cache.
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/cohorts/{cohort_id}/report.xlsx",
    summary="The cohort report as an Excel workbook, one sheet per table (applicants, "
    "positions, rounds, proposals, placements, KPIs); a university office's holds its own "
    "students only",
    response_class=Response,
    responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}},
)
async def report_xlsx(
    cohort_id: CohortId,
    principal: ReportReader,
    request: Request,
    store: Store,
    directory: Directory,
    language: LanguageParam = None,
) -> Response:
    sheets = await report_sheets(cohort_id, principal, request, store, directory, language)
    content = to_xlsx(sheets, title=f"Kitakyushu x Taipei Tech internships {cohort_id}")
    return _attachment(content, XLSX_MEDIA_TYPE, f"internships-{cohort_id}.xlsx")


@router.get(
    "/cohorts/{cohort_id}/report/{table}.csv",
    summary="One table of the cohort report as CSV (UTF-8 with BOM, so that Excel opens it "
    "with the right characters)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def report_csv(
    cohort_id: CohortId,
    table: TableName,
    principal: ReportReader,
    request: Request,
    store: Store,
    directory: Directory,
    language: LanguageParam = None,
) -> Response:
    sheets = await report_sheets(cohort_id, principal, request, store, directory, language)
    sheet = next((s for s in sheets if s.key == table), None)
    if sheet is None:  # pragma: no cover - TableName lists exactly TABLES
        raise not_found("table", table)
    return _attachment(to_csv(sheet), CSV_MEDIA_TYPE, f"internships-{cohort_id}-{table}.csv")
