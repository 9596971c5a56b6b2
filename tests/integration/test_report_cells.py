"""Issue 18 on the real Kafka and MongoDB: the reports are data, not programs.

A company registers through the public form with a formula for a name, its position's title
and location are formulas, and so are a student's name, university, department and degree
programme. One round places the student. Then every file of the coordinator's report (the
XLSX workbook and the six CSV tables) is read back: no cell is a formula, every text cell
that would start one starts with an apostrophe instead (the hostile text kept whole after
it), and numbers, dates and booleans are still typed values.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from pymongo import AsyncMongoClient

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from shared.auth import Role
from tests.driver import ApplicationsDriver
from tests.infra import Infra, eventually, running, serving

pytestmark = pytest.mark.integration

TAG = "report-cells"
COHORT = "2026-cells"
TABLES = ("applicants", "positions", "rounds", "proposals", "placements", "kpis")
# What a spreadsheet program starts a formula with (OWASP, CSV injection), and the full-width
# forms Japanese input produces; written out here rather than imported, so that the test does
# not trust the code it checks.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

HOSTILE = {
    "company_name_ja": '=HYPERLINK("http://evil.example/?x=1","click me")',
    "company_name_en": "+cmd|' /C calc'!A0",
    "title": "-2+3+cmd|' /C calc'!A0",
    "location": "@SUM(1+1)*cmd|' /C calc'!A0",
    "name": '=HYPERLINK("http://evil.example/?who=student","林怡君")',
    "university": "-1+1 National Taipei University of Technology",
    "department": "＝1+2 電機工程系",
    "degree_program": "@master",
}


@dataclass
class Stack:
    apps: ApplicationsDriver
    matching: httpx.AsyncClient
    mdb: Any

    async def call(self, method: str, url: str, role: Role, sub: str, body: Any = None) -> Any:
        headers = self.apps.auth(role, sub)
        r = await self.matching.request(method, url, headers=headers, json=body)
        assert r.status_code in (200, 201), (method, url, r.status_code, r.text)
        return r.json()


@pytest.fixture(scope="module")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    apps_settings = infra.settings(ApplicationsSettings, tag=TAG, database="rc_applications")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    async with serving(create_applications(apps_settings)) as applications_url:
        matching_settings = infra.settings(
            MatchingSettings,
            tag=TAG,
            database="rc_matching",
            applications_url=applications_url,
        )
        async with (
            httpx.AsyncClient(base_url=applications_url, timeout=30) as apps_client,
            running(create_matching(matching_settings)) as matching_client,
        ):
            yield Stack(
                ApplicationsDriver(apps_client, infra),
                matching_client,
                mongo[matching_settings.database],
            )
    await mongo.close()


async def place_a_hostile_student(s: Stack) -> None:
    """The cohort: one company, one position, one student, all named with formulas; one round
    places the student."""
    d = s.apps
    await d.cohort(COHORT)
    company = await d.call(
        "POST",
        "/companies",
        {},
        {
            "name_ja": HOSTILE["company_name_ja"],
            "name_en": HOSTILE["company_name_en"],
            "sector": "semiconductor",
            "ward": "Wakamatsu-ku",
            "address": "2-1 Hibikino, Wakamatsu-ku, Kitakyushu",
            "contact": {"name": "採用担当", "email": "hr-cells@example.jp"},
        },
        expect=201,
    )
    company_id = company["id"]
    await d.call("POST", f"/companies/{company_id}/approve", d.coordinator)
    position = await d.position(
        company_id, COHORT, title=HOSTILE["title"], location=HOSTILE["location"]
    )
    student = await d.student(
        "stu-cells01",
        **{k: HOSTILE[k] for k in ("name", "university", "department", "degree_program")},
    )
    await d.apply(student, COHORT, [position])

    async def synced() -> bool:
        return (
            await s.mdb["applications"].count_documents(
                {"cohort_id": COHORT, "ranked_position_ids": {"$exists": True}}
            )
            == 1
            and await s.mdb["positions"].count_documents(
                {"cohort_id": COHORT, "capacity": {"$exists": True}}
            )
            == 1
        )

    await eventually(synced, timeout=60)
    await d.close(COHORT)

    async def closed() -> bool:
        doc = await s.mdb["cohorts"].find_one({"_id": COHORT})
        return doc is not None and doc["state"] == "closed"

    await eventually(closed, timeout=60)
    await s.call("POST", "/rounds", Role.COORDINATOR, "coordinator", {"cohort_id": COHORT})
    [proposal] = await s.call("GET", f"/proposals?cohort_id={COHORT}", Role.COORDINATOR, "c1")
    for role, party in ((Role.COMPANY, "company"), (Role.STUDENT, "student")):
        await s.call("POST", f"/proposals/{proposal['id']}/accept", role, proposal[f"{party}_id"])
    placements = await s.call("GET", f"/placements?cohort_id={COHORT}", Role.COORDINATOR, "c1")
    assert [p["status"] for p in placements] == ["confirmed"]


def unquoted_formulas(values: list[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.startswith(FORMULA_STARTS)]


async def test_no_cell_of_any_report_file_is_a_formula(stack: Stack) -> None:
    await place_a_hostile_student(stack)
    coordinator = stack.apps.auth(Role.COORDINATOR, "coordinator")
    quoted = {"'" + value for value in HOSTILE.values()}

    r = await stack.matching.get(f"/cohorts/{COHORT}/report.xlsx?lang=en", headers=coordinator)
    assert r.status_code == 200, r.text
    book = load_workbook(io.BytesIO(r.content))  # not read-only: cells keep their data_type
    cells = [cell for ws in book.worksheets for row in ws.iter_rows() for cell in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    assert unquoted_formulas([c.value for c in cells]) == []
    texts = {c.value for c in cells if c.data_type == "s"}
    assert quoted <= texts, quoted - texts
    # The first choice starts with the company's name: quoted as a whole.
    assert f"'{HOSTILE['company_name_ja']} / {HOSTILE['title']}" in texts
    # Typed values stay typed: seats and counts are numbers, days and moments dates.
    sheets = {ws.title: [[c.value for c in row] for row in ws.iter_rows()] for ws in book}
    positions = dict(zip(sheets["Positions"][0], sheets["Positions"][1], strict=True))
    assert positions["Seats"] == 1 and positions["Seats left empty"] == 0
    assert isinstance(positions["Starts"], datetime)  # openpyxl reads an Excel date so
    assert sheets["Rounds"][1][1] == 1
    placement = dict(zip(sheets["Placements"][0], sheets["Placements"][1], strict=True))
    assert isinstance(placement["Confirmed (Japan time)"], datetime)
    kpis = {row[0]: row[2] for row in sheets["KPIs"][1:]}
    assert kpis["match_rate"] == 1.0 and kpis["applicants"] == 1

    for table in TABLES:
        r = await stack.matching.get(
            f"/cohorts/{COHORT}/report/{table}.csv?lang=en", headers=coordinator
        )
        assert r.status_code == 200, r.text
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
        fields = [field for row in rows for field in row]
        assert unquoted_formulas(fields) == [], table
        if table == "positions":
            row = dict(zip(rows[0], rows[1], strict=True))
            assert row["Company (Japanese)"] == "'" + HOSTILE["company_name_ja"]
            assert row["Title"] == "'" + HOSTILE["title"]
            assert row["Location"] == "'" + HOSTILE["location"]
            assert row["Seats"] == "1"
            assert row["Starts"] == positions["Starts"].date().isoformat()
        if table == "applicants":
            row = dict(zip(rows[0], rows[1], strict=True))
            for key, header in (
                ("name", "Name"),
                ("university", "University"),
                ("department", "Department"),
                ("degree_program", "Degree program"),
            ):
                assert row[header] == "'" + HOSTILE[key], header
            assert row["Graduation year"] == "2028"
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["Submitted (Japan time)"])
