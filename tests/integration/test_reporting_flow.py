"""Issue 10 end to end on the real Kafka and MongoDB: a cohort of 32 students (two
universities) goes through two rounds with declines by both sides, an expiry, a cancelled
placement, completions and outcomes. Then:

- the KPIs `analytics/` computes from the public event stream alone equal the KPIs the
  platform serves for the cohort (and its trend row, and the report's KPI sheet);
- the CSV report opens with the right characters (BOM, Chinese and Japanese names) and the
  XLSX report has one sheet per table;
- a university office sees its own students only;
- the dashboard's charts draw in headless Chromium under the portal's Content-Security-Policy.

The applications service runs on a real port (uvicorn): the matching service asks it for the
applicants' names over HTTP, as in production.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from pymongo import AsyncMongoClient

from analytics.consumer import land
from analytics.kpis import kpis_by_cohort, trend_rows
from analytics.landing import Landing, parquet_events
from analytics.settings import AnalyticsSettings
from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.matching.domain.report import kpi_rows
from shared.auth import Role, mint_token
from shared.settings import CommonSettings
from tests.driver import ApplicationsDriver
from tests.infra import Infra, eventually, running, serving

pytestmark = pytest.mark.integration

TAG = "reporting"
TAIPEI_TECH = "National Taipei University of Technology"
NTU = "National Taiwan University"
COHORT = "2026-summer"
# Positions may not start in the past (applications' bounds), and a completion may not be
# recorded before the internship started nor for a day still to come: the scenario's
# internships start today (UTC; the program's zone, Tokyo, is never behind it) and are
# recorded as completed on that day, the only day a test that cannot wait two months has.
_START: list[date] = []


def start_day() -> date:
    """Today (UTC) when the scenario is set up, not when this module was collected: a long
    suite may cross midnight in between."""
    if not _START:
        _START.append(datetime.now(UTC).date())
    return _START[0]


NAMES = [
    "林怡君",
    "陳冠宇",
    "黃詩涵",
    "張家豪",
    "李佳穎",
    "王柏翰",
    "吳欣妤",
    "劉承恩",
    "蔡宜庭",
    "楊子軒",
    "許雅婷",
    "鄭宇翔",
    "謝佩珊",
    "郭俊宏",
    "洪郁婷",
    "邱冠廷",
    "曾筱涵",
    "廖哲瑋",
    "賴映彤",
    "周品睿",
    "徐靖雯",
    "蘇建志",
    "葉芷瑜",
    "莊博凱",
    "江思妤",
    "呂奕辰",
    "何沛恩",
    "羅允中",
    "高語彤",
    "潘韋成",
    "簡若瑄",
    "鍾承翰",
]
NTU_STUDENTS = 4  # the last four study at another university
COMPANIES = [
    ("響灘セミコンダクター株式会社", "Hibikinada Semiconductor Co., Ltd.", "semiconductor"),
    ("若松精密エレクトロニクス株式会社", "Wakamatsu Precision Electronics", "semiconductor"),
    ("戸畑ウエハーテック株式会社", "Tobata Wafer Tech Co., Ltd.", "semiconductor"),
    ("小倉モビリティ工業株式会社", "Kokura Mobility Industries", "automotive"),
    ("八幡オートパーツ株式会社", "Yahata Auto Parts Co., Ltd.", "automotive"),
    ("門司ロボティクス株式会社", "Moji Robotics Co., Ltd.", "robotics_ai"),
    ("北九州AIラボ株式会社", "Kitakyushu AI Lab Co., Ltd.", "robotics_ai"),
]
# (company index, capacity, track, paid)
POSITIONS = [
    (0, 3, "development_design_programming", True),
    (1, 3, "production_line", True),
    (2, 2, "joint_research", False),
    (3, 3, "production_line", True),
    (4, 2, "development_design_programming", True),
    (5, 3, "development_design_programming", True),
    (6, 2, "joint_research", True),
    (6, 2, "development_design_programming", True),
]
# The portal's policy (services/portal/app.py): no inline script or style, no eval.
PORTAL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@dataclass
class Cohort:
    """What the scenario did, for the tests to check against."""

    students: dict[str, str]  # id -> name
    universities: dict[str, str]  # id -> university
    companies: list[str]
    positions: list[str]
    placements: dict[str, dict[str, Any]]  # id -> placement
    completed: list[str]


@dataclass
class Stack:
    apps: ApplicationsDriver
    matching: httpx.AsyncClient
    matching_settings: MatchingSettings
    mongo: AsyncMongoClient[dict[str, Any]]
    infra: Infra
    tmp: Path
    cohort: Cohort | None = None

    @property
    def mdb(self) -> Any:
        return self.mongo[self.matching_settings.database]

    def token(self, role: Role, sub: str, university: str | None = None) -> dict[str, str]:
        settings = CommonSettings(jwt_secret=self.infra.jwt_secret)  # type: ignore[arg-type]
        token = mint_token(settings, role, sub, university=university)
        return {"Authorization": f"Bearer {token}"}

    @property
    def coordinator(self) -> dict[str, str]:
        return self.token(Role.COORDINATOR, "coordinator")

    async def call(
        self, method: str, url: str, headers: dict[str, str], body: Any = None, expect: int = 200
    ) -> Any:
        r = await self.matching.request(method, url, headers=headers, json=body)
        assert r.status_code == expect, (method, url, r.status_code, r.text)
        return r.json()

    async def get(self, url: str, headers: dict[str, str], expect: int = 200) -> httpx.Response:
        r = await self.matching.get(url, headers=headers)
        assert r.status_code == expect, (url, r.status_code, r.text[:500])
        return r

    async def proposals(self, round_id: str) -> list[dict[str, Any]]:
        docs = await self.call("GET", f"/proposals?cohort_id={COHORT}", self.coordinator)
        return sorted((d for d in docs if d["round_id"] == round_id), key=lambda d: d["id"])

    async def answer(self, proposal: dict[str, Any], party: str, accept: bool = True) -> Any:
        role = Role.STUDENT if party == "student" else Role.COMPANY
        headers = self.token(role, proposal[f"{party}_id"])
        verb = "accept" if accept else "decline"
        return await self.call("POST", f"/proposals/{proposal['id']}/{verb}", headers)

    async def status_of(self, proposal_id: str, status: str) -> None:
        async def reached() -> bool:
            doc = await self.call("GET", f"/proposals/{proposal_id}", self.coordinator)
            return bool(doc["status"] == status)

        await eventually(reached, timeout=90)


@pytest.fixture(scope="module")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    apps_settings = infra.settings(ApplicationsSettings, tag=TAG, database="rp_applications")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    async with serving(create_applications(apps_settings)) as applications_url:
        matching_settings = infra.settings(
            MatchingSettings,
            tag=TAG,
            database="rp_matching",
            expiry_sweep_seconds=0.3,
            applications_url=applications_url,
        )
        async with (
            httpx.AsyncClient(base_url=applications_url, timeout=30) as apps_client,
            running(create_matching(matching_settings)) as matching_client,
        ):
            yield Stack(
                ApplicationsDriver(apps_client, infra),
                matching_client,
                matching_settings,
                mongo,
                infra,
                tmp_path_factory.mktemp("analytics"),
            )
    await mongo.close()


async def run_scenario(s: Stack) -> Cohort:
    d = s.apps
    now = datetime.now(UTC)
    await d.call(
        "POST",
        "/cohorts",
        d.coordinator,
        {
            "id": COHORT,
            "name": "第1期生",
            "application_opens": (now - timedelta(days=1)).isoformat(),
            "application_closes": (now + timedelta(days=30)).isoformat(),
        },
        expect=201,
    )
    await d.call("POST", f"/cohorts/{COHORT}/open", d.coordinator)

    companies = []
    for name_ja, name_en, sector in COMPANIES:
        body = await d.call(
            "POST",
            "/companies",
            {},
            {
                "name_ja": name_ja,
                "name_en": name_en,
                "sector": sector,
                "ward": "Wakamatsu-ku",
                "address": "2-1 Hibikino, Wakamatsu-ku, Kitakyushu",
                "contact": {"name": "採用担当", "email": f"hr{len(companies)}@example.jp"},
            },
            expect=201,
        )
        await d.call("POST", f"/companies/{body['id']}/approve", d.coordinator)
        companies.append(body["id"])
    positions = []
    for company, capacity, track, paid in POSITIONS:
        positions.append(
            await d.position(
                companies[company],
                COHORT,
                title="インターンシップ：検査装置ソフトウェア開発",
                capacity=capacity,
                track=track,
                paid=paid,
                min_jlpt="N3",
                start_date=start_day().isoformat(),
                end_date=(start_day() + timedelta(days=61 if paid else 50)).isoformat(),
            )
        )

    students: dict[str, str] = {}
    universities: dict[str, str] = {}
    for i, name in enumerate(NAMES):
        student = f"stu-rp{i:02d}"
        university = NTU if i >= len(NAMES) - NTU_STUDENTS else TAIPEI_TECH
        await d.student(
            student,
            name=name,
            university=university,
            jlpt_level="N4" if i == 7 else ("N3" if i % 5 == 0 else "N2"),
            available_from=(start_day() - timedelta(days=15)).isoformat(),
            available_to=(start_day() + timedelta(days=76)).isoformat(),
        )
        students[student] = name
        universities[student] = university
        ranked = [positions[i % 8], positions[(i + 3) % 8], positions[(i + 5) % 8]]
        application = await d.apply(student, COHORT, ranked)
        if i == 30:  # changes their mind: an edit (withdrawn as `replaced` + a new one)
            await d.call(
                "PUT",
                f"/applications/{application['id']}",
                d.auth(Role.STUDENT, student),
                {"ranked_position_ids": [positions[6], positions[0]], "motivation": "改"},
            )
        if i == 29:  # withdraws before the round
            await d.call(
                "DELETE", f"/applications/{application['id']}", d.auth(Role.STUDENT, student)
            )

    async def synced() -> bool:
        apps = await s.mdb["applications"].count_documents(
            {"cohort_id": COHORT, "ranked_position_ids": {"$exists": True}}
        )
        withdrawn = await s.mdb["applications"].count_documents(
            {"cohort_id": COHORT, "state": "withdrawn"}
        )
        pos = await s.mdb["positions"].count_documents(
            {"cohort_id": COHORT, "capacity": {"$exists": True}}
        )
        return apps == len(NAMES) + 1 and withdrawn == 2 and pos == len(POSITIONS)

    await eventually(synced, timeout=90)
    await d.call("POST", f"/cohorts/{COHORT}/close", d.coordinator)

    async def closed() -> bool:
        doc = await s.mdb["cohorts"].find_one({"_id": COHORT})
        return doc is not None and doc["state"] == "closed"

    await eventually(closed, timeout=60)

    # Round 1: students and companies decline some, accept the rest.
    first = await s.call(
        "POST", "/rounds", s.coordinator, {"cohort_id": COHORT, "seed": 2026}, expect=201
    )
    proposals = await s.proposals(first["id"])
    assert len(proposals) >= 15, len(proposals)
    for index, p in enumerate(proposals):
        if index < 3:
            await s.answer(p, "student", accept=False)
        elif index < 5:
            await s.answer(p, "company", accept=False)
        else:
            await s.answer(p, "company")
            await s.answer(p, "student")

    # Round 2: the freed seats; one proposal is left to expire, the rest are accepted.
    second = await s.call(
        "POST",
        "/rounds",
        s.coordinator,
        {"cohort_id": COHORT, "seed": 2027, "respond_within_hours": 25 / 3600},
        expect=201,
    )
    late = await s.proposals(second["id"])
    assert len(late) >= 2, late
    for p in late[1:]:
        await s.answer(p, "student")
        await s.answer(p, "company")
    await s.status_of(late[0]["id"], "expired")

    placements = {
        p["id"]: p for p in await s.call("GET", f"/placements?cohort_id={COHORT}", s.coordinator)
    }
    ids = sorted(placements)
    assert len(ids) >= 12, len(ids)
    cancelled, done = ids[0], ids[1:9]
    await s.call(
        "POST",
        f"/placements/{cancelled}/cancel",
        s.coordinator,
        {"reason": "student_withdrew", "note_code": "KK-2026-031"},
    )
    for pid in done:
        completed = await s.call(
            "POST", f"/placements/{pid}/complete", s.coordinator, {"completed_on": str(start_day())}
        )
        assert completed["status"] == "completed" and completed["completed_on"]
        assert completed["allowed_actions"] == ["record_outcome"]
    outcomes = [
        "hired_by_host",
        "hired_by_host",
        "hired_in_kitakyushu",
        "hired_elsewhere_in_japan",
        "returned_to_studies",
        "returned_to_studies",
        "unknown",
    ]
    for pid, outcome in zip(done, outcomes, strict=False):
        await s.call("POST", f"/placements/{pid}/outcome", s.coordinator, {"outcome": outcome})
    # Back in studies after the internship, hired by the host a year later: recorded again.
    await s.call(
        "POST", f"/placements/{done[4]}/outcome", s.coordinator, {"outcome": "hired_by_host"}
    )
    return Cohort(students, universities, companies, list(positions), placements, done)


@pytest.fixture(scope="module")
async def cohort(stack: Stack) -> Cohort:
    stack.cohort = await run_scenario(stack)
    return stack.cohort


def analytics_settings(stack: Stack) -> AnalyticsSettings:
    return stack.infra.settings(  # type: ignore[no-any-return]
        AnalyticsSettings, tag=TAG, duckdb_path=stack.tmp / "analytics.duckdb"
    )


async def test_kpis_from_the_event_stream_equal_the_platforms(stack: Stack, cohort: Cohort) -> None:
    served = await stack.call("GET", f"/cohorts/{COHORT}/statistics", stack.coordinator)
    # The scenario is what the issue asks for.
    assert served["applicants"] == len(NAMES) >= 30
    assert served["rounds"] == 2
    assert served["proposals"]["declined"] == 5 and served["declines_by_party"] == {
        "company": 2,
        "student": 3,
    }
    assert served["proposals"]["expired"] == 1
    assert served["placements_cancelled"] == 1 and served["completed"] == 8
    assert served["outcomes"] == {
        "hired_by_host": 3,
        "hired_in_kitakyushu": 1,
        "hired_elsewhere_in_japan": 1,
        "returned_to_studies": 1,
        "unknown": 1,
        "not_recorded": 1,
    }
    assert served["local_employment_rate"] == 0.5
    assert served["japan_employment_rate"] == 0.625

    settings = analytics_settings(stack)
    landing = Landing(settings.duckdb_path)
    try:

        async def same() -> bool:
            await land(settings, landing)
            return kpis_by_cohort(landing.events()).get(COHORT) == served

        await eventually(same, timeout=90, interval=0.5)
        from_stream = kpis_by_cohort(landing.events())[COHORT]
        assert from_stream == served
        # Landing is idempotent: reading the topics again from the beginning (a new group)
        # adds nothing.
        before = landing.counts()
        again = settings.model_copy(update={"group_name": "analytics-replay"})
        progress = await land(again, landing)
        assert progress.events == 0 and progress.batches >= 1
        assert landing.counts() == before
        stream_trend = {r["cohort_id"]: r for r in trend_rows(landing.events())}
        # The Parquet export holds the same events: the same KPIs follow from the files alone.
        landing.export_parquet(stack.tmp / "parquet")
    finally:
        landing.close()
    assert kpis_by_cohort(parquet_events(stack.tmp / "parquet"))[COHORT] == served

    trend = await stack.call("GET", "/kpis/trend", stack.coordinator)
    served_trend = {r["cohort_id"]: r for r in trend["cohorts"]}
    assert served_trend[COHORT] == stream_trend[COHORT]


async def test_outcomes_follow_the_placement_lifecycle(stack: Stack, cohort: Cohort) -> None:
    c = stack.coordinator
    cancelled = next(p for p in sorted(cohort.placements))
    r = await stack.matching.post(f"/placements/{cancelled}/complete", headers=c, json={})
    assert r.status_code == 409 and r.json()["detail"][0]["current_state"] == "cancelled"
    standing = [p for p in sorted(cohort.placements) if p not in cohort.completed][1:]
    confirmed = standing[0]
    r = await stack.matching.post(
        f"/placements/{confirmed}/outcome", headers=c, json={"outcome": "hired_by_host"}
    )
    assert r.status_code == 409 and "completion first" in r.json()["detail"][0]["reason"]
    before, after = start_day() - timedelta(days=1), start_day() + timedelta(days=400)
    for day, reason in ((str(before), "started on"), (str(after), "still to come")):
        r = await stack.matching.post(
            f"/placements/{confirmed}/complete", headers=c, json={"completed_on": day}
        )
        assert r.status_code == 422 and reason in r.json()["detail"][0]["reason"]
    r = await stack.matching.post(
        f"/placements/{cohort.completed[0]}/outcome",
        headers=c,
        json={"outcome": "hired_by_host", "note_code": "山田さんより"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "note_code"
    r = await stack.matching.post(
        f"/placements/{confirmed}/complete", headers=stack.token(Role.STUDENT, "stu-rp00")
    )
    assert r.status_code == 403


async def test_the_csv_report_opens_with_the_right_characters(stack: Stack, cohort: Cohort) -> None:
    r = await stack.get(f"/cohorts/{COHORT}/report/applicants.csv?lang=zh-TW", stack.coordinator)
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    raw = r.content
    assert raw.startswith(codecs.BOM_UTF8)  # Excel in Japan and Taiwan reads UTF-8 then
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["申請編號", "學生編號", "姓名", "學校"]
    assert len(body) == len(NAMES) + 1  # one edit: the replaced version is listed too
    names = {row[2] for row in body}
    assert names == set(NAMES)
    first_choices = " ".join(row[header.index("第一志願")] for row in body)
    for name_ja, _, _ in COMPANIES:
        assert name_ja in first_choices
    assert any(row[header.index("撤回原因")] for row in body)

    r = await stack.get(f"/cohorts/{COHORT}/report/placements.csv?lang=ja", stack.coordinator)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert "在留資格（目安）" in header and "確定日時（日本時間）" in header
    assert len(body) == len(cohort.placements)
    residence = {row[header.index("在留資格（目安）")] for row in body}
    assert residence <= {"特定活動", "短期滞在", "文化活動"} and "特定活動" in residence
    outcomes = {row[header.index("進路")] for row in body}
    assert outcomes >= {"受入企業に就職", "北九州市内の他社に就職"}


async def test_the_xlsx_report_has_one_sheet_per_table(stack: Stack, cohort: Cohort) -> None:
    r = await stack.get(f"/cohorts/{COHORT}/report.xlsx?lang=ja", stack.coordinator)
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    book = load_workbook(io.BytesIO(r.content), read_only=True)
    assert book.sheetnames == ["応募者", "募集職種", "マッチング", "提案と回答", "受入", "指標"]
    sheets = {name: list(book[name].iter_rows(values_only=True)) for name in book.sheetnames}
    assert {row[2] for row in sheets["応募者"][1:]} == set(NAMES)
    assert len(sheets["募集職種"]) == 1 + len(POSITIONS)
    assert [row[1] for row in sheets["マッチング"][1:]] == [1, 2]
    proposals = await stack.call("GET", f"/proposals?cohort_id={COHORT}", stack.coordinator)
    assert len(sheets["提案と回答"]) == 1 + len(proposals)
    assert len(sheets["受入"]) == 1 + len(cohort.placements)
    confirmed_at = sheets["受入"][1][sheets["受入"][0].index("確定日時（日本時間）")]
    assert isinstance(confirmed_at, datetime)  # a real Excel date, in Japan time
    # The KPI sheet holds the served KPIs, figure by figure.
    served = await stack.call("GET", f"/cohorts/{COHORT}/statistics", stack.coordinator)
    in_sheet = {row[0]: row[2] for row in sheets["指標"][1:]}
    assert in_sheet == {row["key"]: row["value"] for row in kpi_rows(served)}
    definitions = {row[0]: row[3] for row in sheets["指標"][1:]}
    assert definitions["match_rate"] == "有効な受入確定のある学生 ÷ 応募者数"


async def test_a_university_office_sees_only_its_own_students(stack: Stack, cohort: Cohort) -> None:
    ntu = {sid for sid, u in cohort.universities.items() if u == NTU}
    taipei_tech = set(cohort.students) - ntu
    office = stack.token(Role.UNIVERSITY, "uni-ntut", university=TAIPEI_TECH)

    # The applications service names its own students only...
    r = await stack.apps.client.get(f"/cohorts/{COHORT}/students", headers=office)
    assert r.status_code == 200
    assert {s["id"] for s in r.json()} == taipei_tech
    other = stack.token(Role.UNIVERSITY, "uni-ntu", university=NTU)
    r = await stack.apps.client.get(f"/cohorts/{COHORT}/students", headers=other)
    assert {s["id"] for s in r.json()} == ntu and {s["university"] for s in r.json()} == {NTU}

    # ... so its report holds rows about them alone, in every sheet.
    r = await stack.get(f"/cohorts/{COHORT}/report.xlsx", office)
    book = load_workbook(io.BytesIO(r.content), read_only=True)
    assert book.sheetnames[0] == "申請者"  # a university office reads Traditional Chinese
    cells = {
        str(v)
        for name in book.sheetnames
        for row in book[name].iter_rows(values_only=True)
        for v in row
        if v is not None
    }
    for sid in ntu:
        assert sid not in cells and cohort.students[sid] not in cells
    applicants = list(book[book.sheetnames[0]].iter_rows(values_only=True))[1:]
    assert {row[1] for row in applicants} == taipei_tech
    assert {row[3] for row in applicants} == {TAIPEI_TECH}
    placements = list(book["實習"].iter_rows(values_only=True))[1:]
    assert placements and {row[2] for row in placements} <= taipei_tech
    r = await stack.get(f"/cohorts/{COHORT}/report/proposals.csv", other)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[1:]
    assert {row[2] for row in rows} <= ntu

    # Without a university in its token, or in another role, nothing.
    nameless = stack.token(Role.UNIVERSITY, "uni-x")
    await stack.get(f"/cohorts/{COHORT}/report.xlsx", nameless, expect=403)
    for role, sub in ((Role.STUDENT, "stu-rp00"), (Role.COMPANY, cohort.companies[0])):
        await stack.get(f"/cohorts/{COHORT}/report.xlsx", stack.token(role, sub), expect=403)
        await stack.get(f"/cohorts/{COHORT}/statistics", stack.token(role, sub), expect=403)
    await stack.get("/cohorts/1999-nothing/report.xlsx", stack.coordinator, expect=404)


async def test_the_dashboard_charts_draw_under_the_portals_policy(
    stack: Stack, cohort: Cohort
) -> None:
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from playwright.async_api import Route, async_playwright

    from shared import charts

    served = await stack.call("GET", f"/cohorts/{COHORT}/statistics", stack.coordinator)
    data = await stack.call("GET", f"/cohorts/{COHORT}/charts?lang=ja", stack.coordinator)
    assert [c["id"] for c in data["charts"]] == ["funnel", "sectors", "time_to_placement"]
    funnel = data["charts"][0]["table"]["rows"]
    assert [n for _, n in funnel] == [
        served["applicants"],
        served["students_proposed"],
        served["placements"],
        served["completed"],
        4,
    ]
    env = Environment(
        loader=FileSystemLoader(str(charts.TEMPLATES_DIR)), autoescape=select_autoescape()
    )
    partial = env.get_template(charts.PARTIAL).render(charts=data, charts_static="/static/charts")
    page_html = (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>指標</title></head>'
        f"<body><main>{partial}</main></body></html>"
    )
    headers = {"Content-Security-Policy": PORTAL_CSP}

    async def serve(route: Route) -> None:
        name = route.request.url.rsplit("/", 1)[1]
        if not name:
            await route.fulfill(body=page_html, content_type="text/html", headers=headers)
        else:
            path = charts.STATIC_DIR / name
            await route.fulfill(path=str(path), content_type="text/javascript", headers=headers)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium")
        try:
            page = await browser.new_page(viewport={"width": 760, "height": 900})
            await page.add_init_script(
                "document.addEventListener('securitypolicyviolation', e =>"
                " (window.__csp = window.__csp || []).push(e.violatedDirective))"
            )
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.route("http://portal.test/**", serve)
            await page.goto("http://portal.test/")
            await page.wait_for_function(
                "[...document.querySelectorAll('[data-kpi-chart]')]"
                ".every(e => ['done', 'failed'].includes(e.dataset.rendered))",
                timeout=60_000,
            )
            states = await page.eval_on_selector_all(
                "[data-kpi-chart]",
                "els => els.map(e => [e.dataset.rendered, e.querySelectorAll('svg rect, svg path')"
                ".length > 0])",
            )
            assert states == [["done", True]] * 3
            assert await page.evaluate("window.__csp || []") == []
            assert errors == []
            ARTIFACTS.mkdir(exist_ok=True)
            await page.locator(".kpi-charts").screenshot(path=str(ARTIFACTS / "kpi-charts.png"))
        finally:
            await browser.close()
