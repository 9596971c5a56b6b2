"""The data a browser test starts from, set up through the services' HTTP APIs as a program with
a token would (the walk-through covers the pages that do the same), so that a test spends its
time on the pages it is about."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import MongoClient

from shared.auth import Role, mint_token
from shared.settings import CommonSettings
from tests.browser.stack import Stack


class Api:
    """The services' HTTP APIs, as a program with a token would call them. Every call must
    succeed: a refusal fails the test with the service's answer."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.settings = CommonSettings(jwt_secret=stack.env["JWT_SECRET"])  # type: ignore[arg-type]
        self.client = httpx.Client(timeout=30)

    def call(
        self, service: str, method: str, path: str, role: Role, sub: str, body: Any = None
    ) -> Any:
        token = mint_token(self.settings, role, sub)
        url = self.stack.env[f"{service.upper()}_URL"] + path
        r = self.client.request(
            method, url, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()

    def public(self, path: str, body: Any) -> Any:
        """The public call: no token."""
        r = self.client.post(self.stack.env["APPLICATIONS_URL"] + path, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def coordinator(
        self, method: str, path: str, body: Any = None, service: str = "applications"
    ) -> Any:
        return self.call(service, method, path, Role.COORDINATOR, "coordinator", body)

    def open_cohort(self, cohort: str, name: str) -> None:
        """A new cohort whose application window opened yesterday and closes in ten days."""
        now = datetime.now(UTC)
        self.coordinator(
            "POST",
            "/cohorts",
            {
                "id": cohort,
                "name": name,
                "application_opens": (now - timedelta(days=1)).isoformat(),
                "application_closes": (now + timedelta(days=10)).isoformat(),
            },
        )
        self.coordinator("POST", f"/cohorts/{cohort}/open")

    def approved_company(self, registration: dict[str, Any]) -> Any:
        """A company that answered the public call with `registration`, approved."""
        company = self.public("/companies", registration)
        self.coordinator("POST", f"/companies/{company['id']}/approve")
        return company

    def publish_position(self, company_id: str, position: dict[str, Any]) -> Any:
        return self.call("applications", "POST", "/positions", Role.COMPANY, company_id, position)

    def student_applies(
        self, sub: str, profile: dict[str, Any], application: dict[str, Any]
    ) -> None:
        """The student `sub` saves `profile` and sends `application`."""
        self.call("applications", "PUT", f"/students/{sub}", Role.STUDENT, sub, profile)
        self.call("applications", "POST", "/applications", Role.STUDENT, sub, application)

    def close_and_run_round(self, cohort: str, pairs: int) -> None:
        """Close the window and run the round once matching proposes `pairs` pairs: it hears of
        the applications and of the closing by event, a moment after they happened."""
        self.coordinator("POST", f"/cohorts/{cohort}/close")
        deadline = time.monotonic() + 60
        while True:
            try:
                preview = self.coordinator(
                    "POST", "/round-preview", {"cohort_id": cohort}, "matching"
                )
                if len(preview["pairs"]) == pairs:
                    self.coordinator("POST", "/rounds", {"cohort_id": cohort}, "matching")
                    return
            except AssertionError:
                pass  # it does not know the cohort, or not yet that it is closed
            assert time.monotonic() < deadline, "matching never took the round"
            time.sleep(0.5)

    def proposals(self, cohort: str) -> list[dict[str, Any]]:
        return list(self.coordinator("GET", f"/proposals?cohort_id={cohort}", service="matching"))

    def both_accept(self, proposal: dict[str, Any], company_id: str) -> None:
        """The student, then the company, accept `proposal`: the second accept confirms the
        placement in the same call."""
        path = f"/proposals/{proposal['id']}/accept"
        self.call("matching", "POST", path, Role.STUDENT, proposal["student_id"])
        self.call("matching", "POST", path, Role.COMPANY, company_id)


def portal_sub(stack: Stack, email: str) -> str:
    """The student id the portal gave an address at its first sign-in."""
    with MongoClient(stack.env["MONGODB_URI"]) as client:
        user = client[stack.env["PORTAL_DATABASE"]]["users"].find_one({"_id": email})
    assert user is not None, email
    return str(user["sub"])
