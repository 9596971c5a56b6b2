"""Drives the applications API the way the coordinator, companies and students do."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import Role
from tests.infra import Infra

_counter = itertools.count(1)
# Internships happen next summer: a position may not start in the past, so tests date theirs
# from today rather than from the year they were written in.
YEAR = datetime.now(UTC).year + 1


def day(month_day: str) -> str:
    """`07-01` -> next year's 1 July, as an ISO date."""
    return f"{YEAR}-{month_day}"


class ApplicationsDriver:
    def __init__(self, client: httpx.AsyncClient, infra: Infra) -> None:
        self.client = client
        self.infra = infra
        self.coordinator = self.auth(Role.COORDINATOR, "coordinator")

    def auth(self, role: Role, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.infra.token(role, sub)}"}

    async def call(
        self, method: str, url: str, headers: dict[str, str], json: Any = None, expect: int = 200
    ) -> Any:
        response = await self.client.request(method, url, headers=headers, json=json)
        assert response.status_code == expect, (method, url, response.status_code, response.text)
        return response.json()

    async def cohort(self, cohort_id: str | None = None, *, open_: bool = True) -> str:
        cohort_id = cohort_id or f"2026-summer-{next(_counter)}"
        now = datetime.now(UTC)
        await self.call(
            "POST",
            "/cohorts",
            self.coordinator,
            {
                "id": cohort_id,
                "name": "First cohort",
                "application_opens": (now - timedelta(days=1)).isoformat(),
                "application_closes": (now + timedelta(days=30)).isoformat(),
            },
            expect=201,
        )
        if open_:
            await self.call("POST", f"/cohorts/{cohort_id}/open", self.coordinator)
        return cohort_id

    async def close(self, cohort_id: str) -> Any:
        """Close the application window (a round needs it closed)."""
        return await self.call("POST", f"/cohorts/{cohort_id}/close", self.coordinator)

    async def company(
        self, *, sector: str = "semiconductor", language: str = "ja", approve: bool = True
    ) -> str:
        n = next(_counter)
        body = await self.call(
            "POST",
            "/companies",
            {},
            {
                "name_ja": f"北九州テック{n}株式会社",
                "name_en": f"Kitakyushu Tech {n} Co., Ltd.",
                "sector": sector,
                "ward": "Wakamatsu-ku",
                "address": "2-1 Hibikino, Wakamatsu-ku, Kitakyushu",
                "contact": {
                    "name": f"担当者 {n}",
                    "email": f"hr{n}@example.jp",
                    "preferred_language": language,
                },
            },
            expect=201,
        )
        if approve:
            await self.call("POST", f"/companies/{body['id']}/approve", self.coordinator)
        return str(body["id"])

    async def position(self, company_id: str, cohort_id: str, **overrides: Any) -> str:
        body = {
            "cohort_id": cohort_id,
            "title": "Embedded software for wafer inspection",
            "track": "development_design_programming",
            "capacity": 1,
            "required_skills": ["python"],
            "min_jlpt": "N3",
            "paid": True,
            "start_date": day("07-01"),
            "end_date": day("08-31"),
            "location": "Kitakyushu Science and Research Park",
            **overrides,
        }
        created = await self.call(
            "POST", "/positions", self.auth(Role.COMPANY, company_id), body, expect=201
        )
        return str(created["id"])

    async def student(
        self, student_id: str | None = None, *, language: str = "zh-TW", **overrides: Any
    ) -> str:
        student_id = student_id or f"stu-{next(_counter):04d}"
        body = {
            "name": f"學生 {student_id}",
            "email": f"{student_id}@example.tw",
            "department": "Electrical Engineering",
            "degree_program": "master",
            "graduation_year": 2028,
            "jlpt_level": "N2",
            "english_level": "B2",
            "skills": ["python", "c"],
            "available_from": day("06-15"),
            "available_to": day("09-15"),
            "preferred_language": language,
            "consent_to_data_use": True,
            **overrides,
        }
        await self.call("PUT", f"/students/{student_id}", self.auth(Role.STUDENT, student_id), body)
        return student_id

    async def apply(
        self, student_id: str, cohort_id: str, positions: list[str], expect: int = 201
    ) -> Any:
        return await self.call(
            "POST",
            "/applications",
            self.auth(Role.STUDENT, student_id),
            {
                "cohort_id": cohort_id,
                "ranked_position_ids": positions,
                "motivation": "I would like to build my career in Kitakyushu.",
            },
            expect=expect,
        )

    async def rank(self, company_id: str, position_id: str, students: list[str]) -> Any:
        return await self.call(
            "PUT",
            f"/positions/{position_id}/ranking",
            self.auth(Role.COMPANY, company_id),
            {"ranked_student_ids": students},
        )
