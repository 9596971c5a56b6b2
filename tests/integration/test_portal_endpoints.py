"""The endpoints the portal needs from the services, across the three real services on the
real Kafka, MongoDB and SMTP sink: a company changes its position while the window is open
(position-published again for the same id: matching and notifications take the change, the
next round and its mails use it), and not after; a company keeps its contact, language and
time zone; a university office reads only its own university's students."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from shared.auth import Role, mint_token
from shared.events.contacts import contact_key
from shared.settings import CommonSettings
from tests.driver import ApplicationsDriver, day
from tests.infra import Infra, eventually, read_mailbox, running

pytestmark = pytest.mark.integration

TAG = "portalapi"
OTHER_UNIVERSITY = "National Taiwan University of Science and Technology"


@dataclass
class Platform:
    apps: ApplicationsDriver
    matching: httpx.AsyncClient
    mongo: AsyncMongoClient[dict[str, Any]]
    infra: Infra
    matching_db: str
    notifications_db: str

    def university(self, university: str | None) -> dict[str, str]:
        settings = CommonSettings(jwt_secret=self.infra.jwt_secret)  # type: ignore[arg-type]
        token = mint_token(settings, Role.UNIVERSITY, "uni-office-1", university=university)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def platform(infra: Infra) -> AsyncIterator[Platform]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read what was sent")
    notifications = infra.settings(
        NotificationsSettings,
        tag=TAG,
        database=f"{TAG}_notifications",
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        delivery_poll_seconds=0.2,
        public_base_url="https://portal.example",
    )
    matching = infra.settings(MatchingSettings, tag=TAG, database=f"{TAG}_matching")
    applications = infra.settings(ApplicationsSettings, tag=TAG, database=f"{TAG}_applications")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    try:
        async with (
            running(create_applications(applications)) as apps,
            running(create_matching(matching)) as match,
            running(create_notifications(notifications)),
        ):
            yield Platform(
                ApplicationsDriver(apps, infra),
                match,
                mongo,
                infra,
                matching.database,
                notifications.database,
            )
    finally:
        await mongo.close()


async def test_a_company_changes_its_position_while_the_window_is_open(platform: Platform) -> None:
    apps = platform.apps
    cohort = await apps.cohort()
    company = await apps.company()
    other = await apps.company()
    position = await apps.position(company, cohort, title="Wafer inspection", capacity=1)
    owner = apps.auth(Role.COMPANY, company)
    current = await apps.call("GET", f"/positions/{position}", owner)
    assert current["allowed_actions"] == ["edit", "close"]
    body = {
        k: current[k]
        for k in (
            "cohort_id",
            "title",
            "description",
            "track",
            "capacity",
            "required_skills",
            "min_jlpt",
            "min_english",
            "paid",
            "start_date",
            "end_date",
            "location",
        )
    }
    changed = {**body, "title": "Wafer inspection software", "capacity": 2, "min_jlpt": None}

    # Only its company (or the coordinator) may change it: to another company it does not
    # exist (404), a student may not change positions at all (403); the rules of a new
    # position hold.
    await apps.call("PUT", f"/positions/{position}", apps.auth(Role.COMPANY, other), changed, 404)
    await apps.call("PUT", f"/positions/{position}", apps.auth(Role.STUDENT, "stu-1"), changed, 403)
    bad = await apps.call(
        "PUT", f"/positions/{position}", owner, {**changed, "end_date": "2027-06-01"}, 422
    )
    assert "end_date must be after start_date" in bad["detail"][0]["reason"]
    moved = await apps.call(
        "PUT", f"/positions/{position}", owner, {**changed, "cohort_id": await apps.cohort()}, 422
    )
    assert moved["detail"][0]["field"] == "cohort_id"

    edited = await apps.call("PUT", f"/positions/{position}", owner, changed)
    assert edited["id"] == position
    assert (edited["title"], edited["capacity"], edited["min_jlpt"]) == (
        "Wafer inspection software",
        2,
        None,
    )

    # position-published again, same id: both read models take the change (upserts by id).
    async def matching_has_it() -> bool:
        doc = await platform.mongo[platform.matching_db]["positions"].find_one({"_id": position})
        return bool(doc and doc["capacity"] == 2 and doc["min_jlpt"] is None)

    async def notifications_has_it() -> bool:
        doc = await platform.mongo[platform.notifications_db]["positions"].find_one(
            {"_id": position}
        )
        return bool(doc and doc["title"] == "Wafer inspection software")

    await eventually(matching_has_it, timeout=30)
    await eventually(notifications_has_it, timeout=30)
    assert (
        await platform.mongo[platform.matching_db]["positions"].count_documents({"_id": position})
        == 1
    )

    # The next round uses the change: two seats now, and the mails name the new title.
    students = [await apps.student(language="en") for _ in range(2)]
    for student in students:
        await apps.apply(student, cohort, [position])
    await apps.close(cohort)

    # Matching has heard of both applications and of the closing (they travel by event).
    await eventually(lambda: _preview_pairs(platform, cohort, expected=2), timeout=30)
    result = await eventually(lambda: _round(platform, cohort), timeout=30)
    assert len(result["pairs"]) == 2

    def proposal_mails() -> list[Any]:
        assert platform.infra.mailbox is not None
        return [
            m
            for m in read_mailbox(platform.infra.mailbox)
            if str(m["X-Template"]) == "match_proposed.student"
            and any(s in str(m["To"]) for s in students)
        ]

    mails = await eventually(lambda: len(proposal_mails()) == 2 and proposal_mails(), timeout=30)
    assert all("Wafer inspection software" in m.get_content() for m in mails)

    # Once the window has closed (and rounds ran), the position no longer changes. The round
    # reaches the applications service by event: the cohort is "matching" there a moment later.
    async def matching() -> Any:
        doc = await apps.call("GET", f"/cohorts/{cohort}", apps.coordinator)
        return doc if doc["state"] == "matching" else None

    await eventually(matching, timeout=30)
    refused = await apps.call("PUT", f"/positions/{position}", owner, changed, 409)
    assert refused["detail"][0]["current_state"] == "matching"
    after = await apps.call("GET", f"/positions/{position}", owner)
    assert after["allowed_actions"] == ["close"]
    await apps.call("POST", f"/positions/{position}/close", owner)
    closed = await apps.call("PUT", f"/positions/{position}", owner, changed, 409)
    assert closed["detail"][0]["current_state"] == "closed"


async def _preview_pairs(platform: Platform, cohort: str, expected: int) -> int | None:
    r = await platform.matching.post(
        "/round-preview",
        headers=platform.apps.auth(Role.COORDINATOR, "coordinator"),
        json={"cohort_id": cohort},
    )
    if r.status_code != 200:
        return None
    pairs = len(r.json()["pairs"])
    return pairs if pairs == expected else None


async def _round(platform: Platform, cohort: str) -> Any:
    """Run a round once matching knows the window is closed (409 until then)."""
    r = await platform.matching.post(
        "/rounds",
        headers=platform.apps.auth(Role.COORDINATOR, "coordinator"),
        json={"cohort_id": cohort},
    )
    if r.status_code == 409:
        return None
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_company_keeps_its_contact_language_and_time_zone(platform: Platform) -> None:
    apps = platform.apps
    company = await apps.company(language="ja")
    contact = {
        "name": "Hanako Yamada",
        "email": f"new-{company}@example.jp",
        "preferred_language": "en",
        "time_zone": "Asia/Taipei",
    }
    await apps.call(
        "PUT",
        f"/companies/{company}/contact",
        apps.auth(Role.COMPANY, await apps.company()),
        contact,
        404,
    )
    bad = await apps.call(
        "PUT",
        f"/companies/{company}/contact",
        apps.auth(Role.COMPANY, company),
        {**contact, "time_zone": "Mars/Olympus"},
        422,
    )
    assert bad["detail"][0]["field"] == "time_zone"
    saved = await apps.call(
        "PUT", f"/companies/{company}/contact", apps.auth(Role.COMPANY, company), contact
    )
    assert saved["contact"] == contact

    # The restricted contacts record follows: the notifications service's copy changes.
    async def copied() -> bool:
        doc = await platform.mongo[platform.notifications_db]["contacts"].find_one(
            {"_id": contact_key("company", company)}
        )
        return bool(
            doc
            and doc["email"] == contact["email"]
            and doc["preferred_language"] == "en"
            and doc["time_zone"] == "Asia/Taipei"
        )

    await eventually(copied, timeout=30)


async def test_a_university_office_reads_only_its_own_students(platform: Platform) -> None:
    apps = platform.apps
    ours = await apps.student(language="zh-TW")
    theirs = await apps.student(language="zh-TW", university=OTHER_UNIVERSITY)
    taipei_tech = platform.university("National Taipei University of Technology")

    listed = {s["id"] for s in await apps.call("GET", "/students", taipei_tech)}
    assert ours in listed and theirs not in listed
    other_office = {
        s["id"] for s in await apps.call("GET", "/students", platform.university(OTHER_UNIVERSITY))
    }
    assert theirs in other_office and ours not in other_office
    everyone = {s["id"] for s in await apps.call("GET", "/students", apps.coordinator)}
    assert {ours, theirs} <= everyone

    assert (await apps.call("GET", f"/students/{ours}", taipei_tech))["id"] == ours
    await apps.call("GET", f"/students/{theirs}", taipei_tech, expect=404)  # not theirs
    await apps.call("GET", "/students/stu-nobody", taipei_tech, expect=404)
    # A token that names no university sees nobody; the office reads no proposals.
    assert await apps.call("GET", "/students", platform.university(None)) == []
    r = await platform.matching.get("/proposals", headers=taipei_tech)
    assert r.status_code == 403
    # The office changes nothing.
    await apps.call("DELETE", f"/students/{ours}", taipei_tech, expect=403)


async def test_a_university_office_reads_where_its_students_go(platform: Platform) -> None:
    """The office signs the internship agreement with its student's host: its list names the
    position, dates, residence status and the host's contact, for its own students only; the
    host reads its intern's address once the placement is confirmed, not before."""
    apps = platform.apps
    cohort = await apps.cohort()
    ours_host, their_host = await apps.company(), await apps.company()
    ours_position = await apps.position(ours_host, cohort, title="Wafer inspection", paid=True)
    their_position = await apps.position(their_host, cohort, title="Press line", paid=False)
    ours = await apps.student()
    theirs = await apps.student(university=OTHER_UNIVERSITY)
    await apps.apply(ours, cohort, [ours_position])
    await apps.apply(theirs, cohort, [their_position])
    await apps.close(cohort)
    await eventually(lambda: _preview_pairs(platform, cohort, expected=2), timeout=30)
    await eventually(lambda: _round(platform, cohort), timeout=30)
    taipei_tech = platform.university("National Taipei University of Technology")

    async def application_of(student: str, office: dict[str, str], state: str) -> Any:
        listed = {s["id"]: s for s in await apps.call("GET", "/students", office)}
        (application,) = [a for a in listed[student]["applications"] if a["cohort_id"] == cohort]
        return application if application["state"] == state else None

    proposed = await eventually(lambda: application_of(ours, taipei_tech, "proposed"), timeout=30)
    contact = (await apps.call("GET", f"/companies/{ours_host}", apps.coordinator))["contact"]
    match = proposed["match"]
    assert (match["position_id"], match["title"], match["paid"]) == (
        ours_position,
        "Wafer inspection",
        True,
    )
    assert match["residence_status"] == "designated_activities"
    assert (match["start_date"], match["end_date"]) == (day("07-01"), day("08-31"))
    assert match["company"]["id"] == ours_host
    assert match["company"]["contact"] == {"name": contact["name"], "email": contact["email"]}
    # Nothing of the other university's student or their host.
    office_view = str(await apps.call("GET", "/students", taipei_tech))
    their_contact = (await apps.call("GET", f"/companies/{their_host}", apps.coordinator))[
        "contact"
    ]
    assert theirs not in office_view and their_contact["email"] not in office_view

    # The host reads its intern's address once both have accepted, not while proposed.
    applicant = f"/positions/{ours_position}/applicants/{ours}"
    host = apps.auth(Role.COMPANY, ours_host)
    assert "email" not in await apps.call("GET", applicant, host)
    proposals = await platform.matching.get(
        "/proposals", params={"cohort_id": cohort}, headers=apps.coordinator
    )
    by_student = {p["student_id"]: p["id"] for p in proposals.json()}
    for who, role in ((ours, Role.STUDENT), (ours_host, Role.COMPANY)):
        r = await platform.matching.post(
            f"/proposals/{by_student[ours]}/accept", headers=apps.auth(role, who)
        )
        assert r.status_code == 200, r.text
    placed = await eventually(lambda: application_of(ours, taipei_tech, "placed"), timeout=30)
    assert placed["match"]["placement_id"] and placed["match"]["company"]["id"] == ours_host
    student = await apps.call("GET", f"/students/{ours}", apps.coordinator)
    assert (await apps.call("GET", applicant, host))["email"] == student["email"]
    await apps.call("GET", applicant, apps.auth(Role.COMPANY, their_host), expect=404)

    # A declined proposal names no host to the other office.
    r = await platform.matching.post(
        f"/proposals/{by_student[theirs]}/decline", headers=apps.auth(Role.COMPANY, their_host)
    )
    assert r.status_code == 200, r.text
    other_office = platform.university(OTHER_UNIVERSITY)
    declined = await eventually(lambda: application_of(theirs, other_office, "declined"))
    assert declined["match"] is None


async def test_a_matching_cohort_offers_another_round_and_finishing(platform: Platform) -> None:
    apps = platform.apps
    cohort = await apps.cohort()
    company = await apps.company()
    position = await apps.position(company, cohort)
    student = await apps.student()
    await apps.apply(student, cohort, [position])
    closed = await apps.close(cohort)
    assert closed["allowed_actions"] == ["open", "run_round"]
    await eventually(lambda: _preview_pairs(platform, cohort, expected=1), timeout=30)
    await eventually(lambda: _round(platform, cohort), timeout=30)

    async def matching() -> Any:
        doc = await apps.call("GET", f"/cohorts/{cohort}", apps.coordinator)
        return doc if doc["state"] == "matching" else None

    doc = await eventually(matching, timeout=30)
    assert doc["allowed_actions"] == ["run_round", "finish"]
