"""Cohort reports on the portal, in a real browser. The coordinator opens the cohort's reports:
the KPI charts (funnel, sectors, time to placement) draw with the vendored Vega under the
portal's own Content-Security-Policy, and the CSV and XLSX reports download through the portal
(which fetches them from the matching service with the coordinator's token; the browser never
holds one). A university office downloads its cohort report and finds its own student only.
The data up to the placements is set up through the APIs (the walk-through covers those pages).
"""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from playwright.sync_api import Browser, Page, expect

from services.portal.i18n import translate_in
from shared.ids import new_id
from tests.browser.api import Api
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser
TAIPEI_TECH = "National Taipei University of Technology"
BOM = b"\xef\xbb\xbf"
CHARTS_DRAWN = (
    "() => { const views = [...document.querySelectorAll('[data-kpi-chart]')];"
    " return views.length > 0"
    " && views.every(v => ['done', 'failed'].includes(v.dataset.rendered)); }"
)
CHART_STATES = (
    "els => els.map(e => [e.dataset.kpiChart, e.dataset.rendered,"
    " e.querySelectorAll('svg rect, svg path, canvas').length > 0])"
)


def placed_cohort(api: Api, tag: str) -> tuple[str, dict[str, str]]:
    """A closed cohort whose one round placed two students: one of Taipei Tech, one of another
    university. Returns the cohort id and the students' names by university."""
    cohort = f"2027-reports-{tag}"
    api.open_cohort(cohort, "第4期生")
    company = api.approved_company(
        {
            "name_ja": f"若松精工{tag}株式会社",
            "name_en": f"Wakamatsu Precision {tag}",
            "sector": "semiconductor",
            "ward": "Wakamatsu-ku",
            "address": "1-1 Hibikino",
            "contact": {
                "name": "山本 彩",
                "email": f"hr-{tag}@wakamatsu.example",
                "preferred_language": "ja",
            },
        },
    )
    position = api.publish_position(
        company["id"],
        {
            "cohort_id": cohort,
            "title": f"Wafer inspection {tag}",
            "track": "production_line",
            "capacity": 2,
            "paid": True,
            "start_date": "2027-07-01",
            "end_date": "2027-08-31",
            "location": "Hibikino plant",
        },
    )
    names = {TAIPEI_TECH: "林冠宇", "National Cheng Kung University": "陳怡君"}
    for university, name in names.items():
        sub = new_id("stu")
        api.student_applies(
            sub,
            {
                "name": name,
                "email": f"{sub}@students.example",
                "university": university,
                "department": "Mechanical Engineering",
                "degree_program": "bachelor",
                "graduation_year": 2028,
                "jlpt_level": "N2",
                "available_from": "2027-06-01",
                "available_to": "2027-09-30",
                "consent_to_data_use": True,
                "preferred_language": "zh-TW",
            },
            {
                "cohort_id": cohort,
                "ranked_position_ids": [position["id"]],
                "motivation": "Precision machining.",
            },
        )
    api.close_and_run_round(cohort, pairs=2)
    for proposal in api.proposals(cohort):
        api.both_accept(proposal, company["id"])
    return cohort, names


def download(page: Page, selector: str) -> tuple[str, bytes]:
    """Click a download link; the file's suggested name and its bytes."""
    with page.expect_download() as info:
        page.click(selector)
    file = info.value
    return file.suggested_filename, Path(file.path()).read_bytes()


def headers_of(page: Page, path: str) -> dict[str, Any]:
    """The response headers of a portal address, fetched with the page's session cookie."""
    response = page.request.get(path)
    assert response.ok, (path, response.status)
    return response.headers


def test_reports_on_the_portal(browser: Browser, stack: Stack) -> None:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    api = Api(stack)
    album = Album(ARTIFACTS / "reports")
    cohort, names = placed_cohort(api, tag)
    with Cast(browser, stack, album) as cast:
        # The coordinator reads the portal in Japanese.
        coordinator = cast.person("coordinator", "ja")
        email = f"reports-{tag}@city.kitakyushu.example"
        stack.add_user("coordinator", email)
        coordinator.sign_in(email, "/coordinator", "/coordinator")
        reports = f"/coordinator/cohorts/{cohort}?tab=reports"
        page = coordinator.page
        page.goto(reports)
        expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text(
            translate_in("ja", "Reports")
        )
        page.wait_for_function(CHARTS_DRAWN, timeout=60_000)
        states = page.eval_on_selector_all("[data-kpi-chart]", CHART_STATES)
        assert states == [
            ["funnel", "done", True],
            ["sectors", "done", True],
            ["time_to_placement", "done", True],
        ]
        coordinator.check("cohort-reports")

        # The same page without the test's CSP bypass (axe needs it): the charts draw under
        # the portal's own policy, from its own /static, with no violation and no error.
        strict = browser.new_context(base_url=stack.portal_url, locale="ja")
        try:
            strict.add_cookies(coordinator.context.cookies())
            strict.add_init_script(
                "document.addEventListener('securitypolicyviolation', e =>"
                " (window.__csp = window.__csp || [])"
                ".push(e.violatedDirective + ' ' + e.blockedURI))"
            )
            strict_page = strict.new_page()
            errors: list[str] = []
            strict_page.on("pageerror", lambda e: errors.append(str(e)))
            response = strict_page.goto(reports)
            assert response is not None
            assert "script-src 'self'" in response.headers["content-security-policy"]
            strict_page.wait_for_function(CHARTS_DRAWN, timeout=60_000)
            assert [
                s[1:] for s in strict_page.eval_on_selector_all("[data-kpi-chart]", CHART_STATES)
            ] == [["done", True]] * 3
            assert strict_page.evaluate("window.__csp || []") == []
            assert errors == []
            scripts = strict_page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
            assert scripts and all(s.startswith(stack.portal_url + "/static/") for s in scripts)
        finally:
            strict.close()

        # The downloads: through the portal, as files, with the names in Chinese intact.
        base = f"/coordinator/cohorts/{cohort}"
        name, csv = download(page, f"a[href='{base}/report/applicants.csv']")
        assert name == f"internships-{cohort}-applicants.csv"
        assert csv.startswith(BOM)
        text = csv.decode("utf-8-sig")
        assert all(n in text for n in names.values()), text[:500]
        headers = headers_of(page, f"{base}/report/applicants.csv")
        assert headers["content-type"].startswith("text/csv")
        assert headers["content-disposition"].startswith("attachment")
        assert headers["cache-control"] == "no-store"
        name, xlsx = download(page, f"a[href='{base}/report.xlsx']")
        assert name == f"internships-{cohort}.xlsx"
        workbook = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
        assert len(workbook.sheetnames) == 6
        assert headers_of(page, f"{base}/report.xlsx")["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        # A table that is not one of the report's is not found, like any other page.
        assert page.request.get(f"{base}/report/secrets.csv").status == 404

        # Taipei Tech's office, in Traditional Chinese: its report holds its own student only.
        office = cast.person("university", "zh-TW")
        office_email = f"office-{tag}@ntut.edu.tw"
        stack.add_user("university", office_email, university=TAIPEI_TECH)
        office.sign_in(office_email, "/university", "/university")
        page = office.visit("/university/reports", "reports")
        expect(page.locator(f"#reports-{cohort}")).to_be_visible()
        name, csv = download(page, f"a[href='/university/cohorts/{cohort}/report/applicants.csv']")
        assert csv.startswith(BOM)
        text = csv.decode("utf-8-sig")
        assert names[TAIPEI_TECH] in text
        assert names["National Cheng Kung University"] not in text
        # The coordinator's addresses are not the office's.
        assert page.request.get(f"{base}/report/applicants.csv").status == 404
    print(f"\nreports: {album.count} pages in {time.monotonic() - started:.1f}s")
