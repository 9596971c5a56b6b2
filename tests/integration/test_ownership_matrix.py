"""Every operation of the three services x every kind of caller, against the real services.

Callers: nobody, the coordinator, the owning company and another one, the owning student and
another one, a university office, and a forged student token whose subject is a company's id.
Expected: no token (or a forged one) is 401; a role that may never do this is 403; a resource
that exists but is not the caller's is 404, exactly like one that does not exist; the owner and
the coordinator are let through. The test fails when an operation is missing from the matrix,
so every new endpoint is audited here.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from shared.auth import Role
from tests.driver import ApplicationsDriver, day
from tests.infra import Infra, eventually, running, serving

pytestmark = pytest.mark.integration

TAG = "matrix"
ANON, COORD, CO_A, CO_B, STU_S, STU_T, UNI, FORGED = (
    "anonymous",
    "coordinator",
    "company A (owner)",
    "company B",
    "student S (owner)",
    "student T",
    "university",
    "student token with company A's id",
)
CALLERS = (ANON, COORD, CO_A, CO_B, STU_S, STU_T, UNI, FORGED)
ROLE_OF = {
    COORD: Role.COORDINATOR,
    CO_A: Role.COMPANY,
    CO_B: Role.COMPANY,
    STU_S: Role.STUDENT,
    STU_T: Role.STUDENT,
    UNI: Role.UNIVERSITY,
}
_ids = itertools.count(1)


@dataclass
class Op:
    service: str
    method: str
    template: str  # as in the OpenAPI document
    roles: frozenset[Role] | None  # None: public (no token needed)
    # Callers of a permitted role for whom the resource is theirs; None: no owner (a list, or
    # something the role may do on anything).
    owners: frozenset[str] | None = None
    body: Any = None
    ids: dict[str, str] = field(default_factory=dict)
    # Callers not called in this row: their cell is another row (the coordinator erases
    # another student).
    skip: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return f"{self.method} {self.service}{self.template}"

    def expected_refusal(self, caller: str) -> int | None:
        """401, 403 or 404 for a caller that must be refused; None when it is let through."""
        if self.roles is None:
            return None
        if caller in (ANON, FORGED):
            return 401
        if ROLE_OF[caller] not in self.roles:
            return 403
        if self.owners is not None and caller != COORD and caller not in self.owners:
            return 404
        return None


@dataclass
class World:
    clients: dict[str, httpx.AsyncClient]
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]
    mongo: AsyncMongoClient[dict[str, Any]]


@pytest.fixture(scope="module")
async def world(infra: Infra) -> AsyncIterator[World]:
    # The applications service on a real port: the matching service asks it for the
    # applicants of a cohort report.
    apps_app = create_applications(
        infra.settings(ApplicationsSettings, tag=TAG, database="mx_apps")
    )
    async with (
        serving(apps_app) as apps_url,
        httpx.AsyncClient(base_url=apps_url, timeout=30) as apps,
        running(
            create_matching(
                infra.settings(
                    MatchingSettings, tag=TAG, database="mx_matching", applications_url=apps_url
                )
            )
        ) as matching,
        running(
            create_notifications(
                infra.settings(
                    NotificationsSettings,
                    tag=TAG,
                    database="mx_notifications",
                    smtp_host=infra.smtp_host,
                    smtp_port=infra.smtp_port,
                    delivery_poll_seconds=0.2,
                )
            )
        ) as notifications,
    ):
        d = ApplicationsDriver(apps, infra)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
        cohort = await d.cohort()
        spare_cohort = await d.cohort(open_=False)
        company_a, company_b = await d.company(), await d.company()
        to_reject = await d.company(approve=False)
        to_approve = await d.company(approve=False)
        to_suspend = await d.company()
        position = await d.position(company_a, cohort, capacity=2)
        to_close = await d.position(company_a, cohort)
        s, t, u, v = await d.student(), await d.student(), await d.student(), await d.student()
        application = await d.apply(s, cohort, [position])
        await d.apply(v, cohort, [position])
        await d.close(cohort)
        coordinator = d.coordinator

        async def matched() -> Any:
            r = await matching.post(
                "/rounds", headers=coordinator, json={"cohort_id": cohort, "seed": 1}
            )
            return r.json() if r.status_code == 201 and r.json()["pairs"] else None

        round_doc = await eventually(matched, timeout=30, interval=0.5)
        proposals = (
            await matching.get(f"/proposals?cohort_id={cohort}", headers=coordinator)
        ).json()
        proposal = next(p for p in proposals if p["student_id"] == s)
        # V and company A both accept V's proposal: a placement of company A (not S's).
        placed = next(p for p in proposals if p["student_id"] == v)
        for role, sub in ((Role.STUDENT, v), (Role.COMPANY, company_a)):
            r = await matching.post(f"/proposals/{placed['id']}/accept", headers=d.auth(role, sub))
            assert r.status_code == 200, r.text
        placement = (await matching.get("/placements", headers=coordinator)).json()[0]
        assert placement["student_id"] == v

        async def a_message() -> Any:
            r = await notifications.get(f"/deliveries?recipient_id={s}", headers=coordinator)
            return r.json()[0]["id"] if r.status_code == 200 and r.json() else None

        message = await eventually(a_message, timeout=30, interval=0.3)
        tokens = {
            COORD: infra.token(Role.COORDINATOR, "coordinator"),
            CO_A: infra.token(Role.COMPANY, company_a),
            CO_B: infra.token(Role.COMPANY, company_b),
            STU_S: infra.token(Role.STUDENT, s),
            STU_T: infra.token(Role.STUDENT, t),
            UNI: infra.token(
                Role.UNIVERSITY, "uni-ntut", university="National Taipei University of Technology"
            ),
            FORGED: infra.forged_token("student", company_a),
        }
        yield World(
            clients={"applications": apps, "matching": matching, "notifications": notifications},
            headers={ANON: {}} | {c: {"Authorization": f"Bearer {v}"} for c, v in tokens.items()},
            mongo=mongo,
            ids={
                "cohort_id": cohort,
                "spare_cohort": spare_cohort,
                "company_a": company_a,
                "company_b": company_b,
                "to_reject": to_reject,
                "to_approve": to_approve,
                "to_suspend": to_suspend,
                "position_id": position,
                "to_close": to_close,
                "student_s": s,
                "student_t": t,
                "student_u": u,
                "application_id": application["id"],
                "round_id": round_doc["id"],
                "proposal_id": proposal["id"],
                "placement_id": placement["id"],
                "message_id": message,
            },
        )
        await mongo.close()


def operations(ids: dict[str, str]) -> list[Op]:
    """Every operation, in an order where the ones that change or erase things come last."""
    anyone = frozenset(Role)
    coord = frozenset({Role.COORDINATOR})
    companies = frozenset({Role.COMPANY, Role.COORDINATOR})
    students = frozenset({Role.STUDENT, Role.COORDINATOR})
    participants = frozenset({Role.COORDINATOR, Role.COMPANY, Role.STUDENT})
    answerers = frozenset({Role.STUDENT, Role.COMPANY})
    # Reports and KPIs: the coordinator and a university office (its own students only).
    readers = frozenset({Role.COORDINATOR, Role.UNIVERSITY})
    a, s = frozenset({CO_A}), frozenset({STU_S})
    program = {"sub": "coordinator"}  # the COORD caller's token sub
    student_body = {
        "name": "學生 S",
        "email": "s@example.tw",
        "department": "Electrical Engineering",
        "degree_program": "master",
        "graduation_year": 2028,
        "available_from": day("06-15"),
        "available_to": day("09-15"),
        "consent_to_data_use": True,
    }
    position_body = {
        "cohort_id": ids["cohort_id"],
        "company_id": ids["company_a"],
        "title": "t",
        "track": "production_line",
        "capacity": 1,
        "paid": False,
        "start_date": day("07-01"),
        "end_date": day("08-01"),
        "location": "Kokura",
    }
    return [
        # Public (/metrics: counts by route template, topic and outcome, no personal data;
        # in Kubernetes only the monitoring namespace reaches it, the Ingress serves the portal)
        Op("applications", "GET", "/health/live", None),
        Op("applications", "GET", "/health/ready", None),
        Op("applications", "GET", "/asyncapi.json", None),
        Op("applications", "GET", "/metrics", None),
        Op("matching", "GET", "/health/live", None),
        Op("matching", "GET", "/health/ready", None),
        Op("matching", "GET", "/asyncapi.json", None),
        Op("matching", "GET", "/metrics", None),
        Op("notifications", "GET", "/health/live", None),
        Op("notifications", "GET", "/health/ready", None),
        Op("notifications", "GET", "/asyncapi.json", None),
        Op("notifications", "GET", "/metrics", None),
        Op("applications", "POST", "/companies", None, body="new company"),
        # Reads
        Op("applications", "GET", "/cohorts", anyone),
        Op("applications", "GET", "/cohorts/{cohort_id}", anyone),
        Op("applications", "GET", "/companies", companies),
        Op("applications", "GET", "/companies/{company_id}", companies, a),
        Op("applications", "GET", "/positions", participants),
        Op("applications", "GET", "/positions/{position_id}", participants, a | s | {STU_T}),
        Op("applications", "GET", "/positions/{position_id}/applicants", companies, a),
        # A university office reads its own university's students: S is one of them.
        Op(
            "applications", "GET", "/students/{student_id}", students | {Role.UNIVERSITY}, s | {UNI}
        ),
        # The portal's reads: the directory for anyone signed in, a company's applicant and
        # ranking, the students' list for the coordinator and university offices (its own
        # university's only).
        Op("applications", "GET", "/companies/directory", anyone),
        Op(
            "applications",
            "GET",
            "/positions/{position_id}/applicants/{student_id}",
            companies,
            a,
        ),
        Op("applications", "GET", "/positions/{position_id}/ranking", companies, a),
        Op("applications", "GET", "/students", frozenset({Role.COORDINATOR, Role.UNIVERSITY})),
        Op("applications", "GET", "/applications", students),
        Op("applications", "GET", "/applications/{application_id}", students, s),
        Op("matching", "GET", "/rounds", coord),
        Op("matching", "GET", "/rounds/{round_id}", coord),
        Op("matching", "GET", "/rounds/{round_id}/exclusions", coord),
        Op("matching", "GET", "/proposals", participants),
        Op("matching", "GET", "/proposals/{proposal_id}", participants, a | s),
        Op("matching", "GET", "/placements", participants),
        # V's placement with company A: S is a student of the cohort, but it is not theirs.
        Op("matching", "GET", "/placements/{placement_id}", participants, a),
        Op("applications", "GET", "/cohorts/{cohort_id}/students", readers),
        Op("matching", "GET", "/cohorts/{cohort_id}/statistics", readers),
        Op("matching", "GET", "/kpis/trend", readers),
        Op("matching", "GET", "/cohorts/{cohort_id}/charts", readers),
        Op("matching", "GET", "/cohorts/{cohort_id}/report.xlsx", readers),
        Op("matching", "GET", "/cohorts/{cohort_id}/report/{table}.csv", readers),
        Op("notifications", "GET", "/deliveries", coord),
        Op("notifications", "GET", "/deliveries/failures", coord),
        Op("notifications", "GET", "/deliveries/{message_id}", coord),
        # A coordinator's own mail choices (another coordinator's are 404: the flow test;
        # this token's sub names the program address, which is no person: 422).
        Op("notifications", "GET", "/recipients/coordinators/{sub}", coord, ids=program),
        # Writes
        Op("applications", "POST", "/cohorts", coord, body="new cohort"),
        Op(
            "applications",
            "POST",
            "/companies/{company_id}/approve",
            coord,
            ids={"company_id": ids["to_approve"]},
        ),
        Op(
            "applications",
            "POST",
            "/companies/{company_id}/reject",
            coord,
            ids={"company_id": ids["to_reject"]},
        ),
        Op(
            "applications",
            "POST",
            "/companies/{company_id}/suspend",
            coord,
            ids={"company_id": ids["to_suspend"]},
        ),
        Op("applications", "POST", "/positions", companies, a, body=position_body),
        Op(
            "applications",
            "PUT",
            "/positions/{position_id}/ranking",
            companies,
            a,
            body={"ranked_student_ids": [ids["student_s"]]},
        ),
        Op(
            "applications",
            "POST",
            "/positions/{position_id}/close",
            companies,
            a,
            ids={"position_id": ids["to_close"]},
        ),
        Op("applications", "PUT", "/students/{student_id}", students, s, body=student_body),
        Op(
            "applications",
            "POST",
            "/applications",
            frozenset({Role.STUDENT}),
            body={"cohort_id": ids["cohort_id"], "ranked_position_ids": [ids["position_id"]]},
        ),
        Op(
            "applications",
            "PUT",
            "/applications/{application_id}",
            frozenset({Role.STUDENT}),
            s,
            body={"ranked_position_ids": [ids["position_id"]]},
        ),
        Op(
            "applications", "DELETE", "/applications/{application_id}", frozenset({Role.STUDENT}), s
        ),
        Op(
            "applications",
            "POST",
            "/cohorts/{cohort_id}/open",
            coord,
            ids={"cohort_id": ids["spare_cohort"]},
        ),
        Op(
            "applications",
            "POST",
            "/cohorts/{cohort_id}/close",
            coord,
            ids={"cohort_id": ids["spare_cohort"]},
        ),
        Op("matching", "POST", "/rounds", coord, body={"cohort_id": ids["spare_cohort"]}),
        Op("matching", "POST", "/rounds/{round_id}/replay", coord),
        Op("matching", "POST", "/round-preview", coord, body={"cohort_id": ids["cohort_id"]}),
        Op(
            "applications",
            "PUT",
            "/companies/{company_id}/contact",
            companies,
            a,
            body={"name": "担当", "email": "hr-a@matrix.example", "preferred_language": "ja"},
        ),
        Op("applications", "PUT", "/positions/{position_id}", companies, a, body=position_body),
        Op("matching", "POST", "/proposals/{proposal_id}/accept", answerers, a | s),
        Op("matching", "POST", "/proposals/{proposal_id}/decline", answerers, a | s),
        Op("matching", "POST", "/proposals/{proposal_id}/cancel", coord),
        # Before its end the internship cannot be recorded as completed (422), nor an outcome
        # before the completion (409): let through, answered by the rules.
        Op("matching", "POST", "/placements/{placement_id}/complete", coord, body={}),
        Op(
            "matching",
            "POST",
            "/placements/{placement_id}/outcome",
            coord,
            body={"outcome": "hired_by_host"},
        ),
        Op(
            "matching",
            "POST",
            "/placements/{placement_id}/cancel",
            coord,
            body={"reason": "program_decision", "note_code": "KK-2030-001"},
        ),
        Op(
            "applications",
            "POST",
            "/cohorts/{cohort_id}/finish",
            coord,
            ids={"cohort_id": ids["spare_cohort"]},
        ),
        Op("notifications", "POST", "/deliveries/{message_id}/retry", coord),
        Op(
            "notifications",
            "PUT",
            "/recipients/coordinators/{sub}",
            coord,
            body={"email": "office@city.example"},
            ids=program,
        ),
        Op("notifications", "DELETE", "/recipients/coordinators/{sub}", coord, ids=program),
        # The coordinator erases student U (nobody else's); S erases themself last.
        Op(
            "applications",
            "DELETE",
            "/students/{student_id}",
            students,
            frozenset(),
            ids={"student_id": ids["student_u"]},
        ),
        Op(
            "applications", "DELETE", "/students/{student_id}", students, s, skip=frozenset({COORD})
        ),
    ]


def url(op: Op, ids: dict[str, str]) -> str:
    values = {
        "cohort_id": ids["cohort_id"],
        "company_id": ids["company_a"],
        "position_id": ids["position_id"],
        "student_id": ids["student_s"],
        "application_id": ids["application_id"],
        "round_id": ids["round_id"],
        "proposal_id": ids["proposal_id"],
        "placement_id": ids["placement_id"],
        "message_id": ids["message_id"],
        "table": "applicants",
        **op.ids,
    }
    return op.template.format(**values)


def body(op: Op) -> Any:
    if op.body == "new company":  # each with a contact address of its own (one address, one person)
        return {
            "name_ja": "公募株式会社",
            "name_en": "Public Call Co.",
            "sector": "automotive",
            "ward": "Kokura Kita-ku",
            "address": "1-1 Jonai",
            "contact": {"name": "担当", "email": f"hr-{next(_ids)}@call.example"},
        }
    if op.body == "new cohort":
        return {
            "id": f"2030-matrix-{next(_ids)}",
            "name": "matrix",
            "application_opens": "2030-01-01T00:00:00+09:00",
            "application_closes": "2030-02-01T00:00:00+09:00",
        }
    return op.body


async def call(world: World, op: Op, caller: str) -> httpx.Response:
    client = world.clients[op.service]
    return await client.request(
        op.method, url(op, world.ids), headers=world.headers[caller], json=body(op)
    )


async def test_every_operation_is_in_the_matrix(world: World) -> None:
    listed = {(op.service, op.method, op.template) for op in operations(world.ids)}
    served = set()
    for service, client in world.clients.items():
        spec = (await client.get("/openapi.json")).json()
        for path, methods in spec["paths"].items():
            served |= {(service, method.upper(), path) for method in methods}
    assert served - listed == set(), "operations nobody audited: add them to the matrix"
    assert listed - served == set(), "the matrix lists operations that do not exist"


async def test_what_each_caller_sees_is_theirs_only(world: World) -> None:
    ids, h = world.ids, world.headers
    apps, matching = world.clients["applications"], world.clients["matching"]

    async def get(client: httpx.AsyncClient, path: str, caller: str) -> Any:
        r = await client.get(path, headers=h[caller])
        assert r.status_code == 200, (path, caller, r.text)
        return r.json()

    # Company B does not see company A's position, not even when it asks for it.
    listed = await get(apps, "/positions", CO_B)
    assert ids["position_id"] not in {p["id"] for p in listed}
    mine = await get(apps, "/companies", CO_A)
    assert [c["id"] for c in mine] == [ids["company_a"]]
    r = await apps.get(f"/positions?company_id={ids['company_a']}", headers=h[STU_T])
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "company_id"
    # Lists hold the caller's own only.
    for caller, key, own in [(STU_S, "student_id", ids["student_s"]), (CO_B, "company_id", "")]:
        for path in ("/proposals", "/placements"):
            assert {p[key] for p in await get(matching, path, caller)} <= {own}, (path, caller)
    assert {a["student_id"] for a in await get(apps, "/applications", STU_T)} == set()
    # The company sees its applicant's rank of its position and motivation, not the
    # student's other choices: the application itself is not for companies to read.
    applicants = await get(apps, f"/positions/{ids['position_id']}/applicants", CO_A)
    assert {"student_rank", "motivation"} <= set(applicants[0])
    assert "ranked_position_ids" not in applicants[0]
    r = await apps.get(f"/applications/{ids['application_id']}", headers=h[CO_A])
    assert r.status_code == 403

    # What each may do next (`allowed_actions`) is offered to whom may do it, and to no one else.
    cohort = f"/cohorts/{ids['cohort_id']}"
    assert (await get(apps, cohort, COORD))["allowed_actions"]
    for caller in (CO_A, STU_S, UNI):
        assert (await get(apps, cohort, caller))["allowed_actions"] == [], caller
    company = f"/companies/{ids['company_a']}"
    assert (await get(apps, company, COORD))["allowed_actions"]
    assert (await get(apps, company, CO_A))["allowed_actions"] == []
    application = f"/applications/{ids['application_id']}"
    assert "withdraw" in (await get(apps, application, STU_S))["allowed_actions"]
    assert (await get(apps, application, COORD))["allowed_actions"] == []
    proposal = f"/proposals/{ids['proposal_id']}"
    assert (await get(matching, proposal, COORD))["allowed_actions"] == ["cancel"]
    for caller in (STU_S, CO_A):
        assert (await get(matching, proposal, caller))["allowed_actions"] == [
            "accept",
            "decline",
        ], caller
    placement = f"/placements/{ids['placement_id']}"
    assert (await get(matching, placement, COORD))["allowed_actions"] == ["cancel", "complete"]
    assert (await get(matching, placement, CO_A))["allowed_actions"] == []


async def test_each_caller_reaches_only_what_is_theirs(world: World) -> None:
    ops = operations(world.ids)
    wrong = []
    # First every refusal (nothing may change), then the permitted calls in order.
    for op in ops:
        for caller in CALLERS:
            if caller in op.skip:
                continue
            expected = op.expected_refusal(caller)
            if expected is None:
                continue
            r = await call(world, op, caller)
            if r.status_code != expected:
                wrong.append(f"{op.label} as {caller}: {r.status_code}, expected {expected}")
            elif r.json()["detail"][0]["reason"] is None:
                wrong.append(f"{op.label} as {caller}: no reason given")
    for op in ops:
        for caller in CALLERS:
            if caller in op.skip or op.expected_refusal(caller) is not None:
                continue
            r = await call(world, op, caller)
            # Let through: it may still be a business-rule answer (409, 422), never a refusal.
            if r.status_code in (401, 403, 404) or r.status_code >= 500:
                wrong.append(f"{op.label} as {caller}: {r.status_code} {r.text[:200]}")
    assert wrong == []
    # S erased themself last: the notifications service forgets them (and is idle again
    # before the services stop).
    erasures = world.mongo["mx_notifications"]["erasures"]
    await eventually(lambda: erasures.find_one({"_id": f"student:{world.ids['student_s']}"}))
