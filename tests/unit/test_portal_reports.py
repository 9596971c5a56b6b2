"""The portal's report addresses reach the download routes (not the cohort step confirmation
that shares their prefix), and a university office's are its own."""

from __future__ import annotations

from starlette.routing import Match

from services.portal.pages import ROUTERS, common


def route_name(path: str) -> str | None:
    """The first page route (in the order the portal tries them) that takes a GET of `path`."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    for router in ROUTERS:
        for route in router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "name", None)
    return None


def test_report_addresses_are_the_download_routes() -> None:
    for prefix in ("/coordinator", "/university"):
        assert route_name(f"{prefix}/cohorts/2027-summer/report.xlsx") == "report_workbook"
        for table in common.REPORT_TABLES:
            path = f"{prefix}/cohorts/2027-summer/report/{table}.csv"
            assert route_name(path) == "report_table", path
    assert route_name("/university/reports") == "reports"


def test_the_report_tables_are_the_matching_services() -> None:
    from services.matching.domain.report import TABLES

    assert tuple(common.REPORT_TABLES) == TABLES
