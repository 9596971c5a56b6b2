"""HTTP submit -> MongoDB -> CloudEvent on Kafka, against the real servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.applications.app import ApplicationsSettings, create_app
from shared.auth import Role
from shared.events import ApplicationSubmitted, parse_event
from shared.events.schemas import SCHEMA_DIR
from tests.driver import ApplicationsDriver, day
from tests.infra import Infra, TopicReader, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def service(infra: Infra) -> AsyncIterator[tuple[ApplicationsDriver, ApplicationsSettings]]:
    settings = infra.settings(ApplicationsSettings, database="applications_flow")
    async with running(create_app(settings)) as client:
        yield ApplicationsDriver(client, infra), settings


@pytest.fixture(scope="module")
async def mongo(infra: Infra) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    yield client
    await client.close()


async def test_submit_stores_and_publishes_a_cloudevent(service, mongo, infra: Infra) -> None:
    driver, settings = service
    cohort = await driver.cohort()
    company = await driver.company()
    position = await driver.position(company, cohort)
    student = await driver.student()
    application = await driver.apply(student, cohort, [position])

    stored = await mongo[settings.database]["applications"].find_one({"_id": application["id"]})
    assert stored is not None
    assert stored["student_id"] == student
    assert stored["ranked_position_ids"] == [position]
    assert stored["state"] == "submitted"

    topic = settings.topic("application-submitted")
    async with TopicReader(infra.kafka_bootstrap, topic) as reader:
        records = await reader.wait_for(
            lambda rs: any(r.key == application["id"].encode() for r in rs)
        )
    record = next(r for r in records if r.key == application["id"].encode())
    event = parse_event(record.value, expected="application-submitted")
    assert event.specversion == "1.0"
    assert event.type == "jp.kitakyushu.internship.application-submitted.v1"
    assert event.subject == application["id"]
    assert event.source == "/services/applications"
    assert event.dataschema.endswith(":application-submitted:v1")
    assert isinstance(event.data, ApplicationSubmitted)
    assert event.data.student_id == student
    assert event.data.ranked_position_ids == [position]
    # CloudEvents Kafka binding, structured mode: the content-type header names the event
    # format, and no ce_* header is present (a ce_* header would mean binary mode).
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    assert not [name for name in headers if name.startswith("ce_")]

    # The payload carries no personal data: the name, e-mail and motivation stay home.
    raw = json.loads(record.value)
    text = json.dumps(raw, ensure_ascii=False)
    assert "example.tw" not in text
    assert "學生" not in text
    assert "career in Kitakyushu" not in text
    # And it matches the checked-in schema's field set.
    schema = json.loads((SCHEMA_DIR / "application-submitted.v1.json").read_text())
    data_def = schema["$defs"]["ApplicationSubmitted"]
    assert set(raw["data"]) <= set(data_def["properties"])
    assert set(data_def["required"]) <= set(raw["data"])


async def test_contact_goes_to_the_restricted_topic_only(service, infra: Infra) -> None:
    driver, settings = service
    student = await driver.student(language="ja")
    key = f"student:{student}".encode()  # keyed by role and id
    async with TopicReader(infra.kafka_bootstrap, settings.topic("contacts")) as reader:
        records = await reader.wait_for(lambda rs: any(r.key == key for r in rs))
    value = json.loads(next(r for r in records if r.key == key).value)
    assert value["email"] == f"{student}@example.tw"
    assert value["preferred_language"] == "ja"


async def test_edit_withdraws_and_resubmits(service, infra: Infra) -> None:
    driver, settings = service
    cohort = await driver.cohort()
    company = await driver.company()
    first = await driver.position(company, cohort)
    second = await driver.position(company, cohort)
    student = await driver.student()
    original = await driver.apply(student, cohort, [first])
    edited = await driver.call(
        "PUT",
        f"/applications/{original['id']}",
        driver.auth(Role.STUDENT, student),
        {"ranked_position_ids": [second, first]},
    )
    assert edited["id"] != original["id"]
    assert edited["ranked_position_ids"] == [second, first]
    old = await driver.call(
        "GET", f"/applications/{original['id']}", driver.auth(Role.STUDENT, student)
    )
    assert old["state"] == "withdrawn"
    assert old["replaced_by"] == edited["id"]

    async with TopicReader(
        infra.kafka_bootstrap, settings.topic("application-withdrawn")
    ) as reader:
        records = await reader.wait_for(
            lambda rs: any(r.key == original["id"].encode() for r in rs)
        )
    withdrawn = json.loads(next(r for r in records if r.key == original["id"].encode()).value)
    assert withdrawn["data"]["reason"] == "replaced"
    assert withdrawn["data"]["replaced_by"] == edited["id"]


async def test_ranking_publishes_applicants_ranked(service, infra: Infra) -> None:
    driver, settings = service
    cohort = await driver.cohort()
    company = await driver.company()
    position = await driver.position(company, cohort, capacity=2)
    a, b = await driver.student(), await driver.student()
    await driver.apply(a, cohort, [position])
    await driver.apply(b, cohort, [position])
    applicants = await driver.call(
        "GET", f"/positions/{position}/applicants", driver.auth(Role.COMPANY, company)
    )
    assert {x["student_id"] for x in applicants} == {a, b}
    await driver.rank(company, position, [b, a])
    async with TopicReader(infra.kafka_bootstrap, settings.topic("applicants-ranked")) as reader:
        records = await reader.wait_for(lambda rs: any(r.key == position.encode() for r in rs))
    event = json.loads(next(r for r in records if r.key == position.encode()).value)
    assert event["data"]["ranked_student_ids"] == [b, a]


class TestValidationAndOwnership:
    """Every refusal is a 4xx naming the field and the reason, and writes nothing."""

    async def _setup(self, driver: ApplicationsDriver) -> dict[str, str]:
        cohort = await driver.cohort()
        company = await driver.company()
        position = await driver.position(company, cohort)
        return {"cohort": cohort, "company": company, "position": position}

    @staticmethod
    def reason(response: httpx.Response) -> dict[str, Any]:
        detail = response.json()["detail"]
        assert isinstance(detail, list) and detail, response.text
        return detail[0]

    async def test_unknown_position(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        student = await driver.student()
        r = await driver.client.post(
            "/applications",
            headers=driver.auth(Role.STUDENT, student),
            json={"cohort_id": ctx["cohort"], "ranked_position_ids": [ctx["position"], "pos-x"]},
        )
        assert r.status_code == 422
        assert self.reason(r) == {
            "field": "ranked_position_ids.1",
            "reason": "position 'pos-x' does not exist",
        }

    async def test_closed_position_and_nothing_half_written(self, service, mongo) -> None:
        driver, settings = service
        ctx = await self._setup(driver)
        await driver.call(
            "POST", f"/positions/{ctx['position']}/close", driver.auth(Role.COMPANY, ctx["company"])
        )
        student = await driver.student()
        outbox_before = await mongo[settings.database]["outbox"].count_documents({})
        r = await driver.client.post(
            "/applications",
            headers=driver.auth(Role.STUDENT, student),
            json={"cohort_id": ctx["cohort"], "ranked_position_ids": [ctx["position"]]},
        )
        assert r.status_code == 422
        assert self.reason(r)["field"] == "ranked_position_ids.0"
        assert "closed" in self.reason(r)["reason"]
        db = mongo[settings.database]
        assert await db["applications"].count_documents({"student_id": student}) == 0
        assert await db["outbox"].count_documents({}) == outbox_before

    async def test_duplicates_in_ranking(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        student = await driver.student()
        r = await driver.client.post(
            "/applications",
            headers=driver.auth(Role.STUDENT, student),
            json={"cohort_id": ctx["cohort"], "ranked_position_ids": [ctx["position"]] * 2},
        )
        assert r.status_code == 422
        assert self.reason(r)["field"] == "ranked_position_ids"
        assert "ranked once" in self.reason(r)["reason"]

    async def test_window_closed(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        await driver.call("POST", f"/cohorts/{ctx['cohort']}/close", driver.coordinator)
        student = await driver.student()
        r = await driver.client.post(
            "/applications",
            headers=driver.auth(Role.STUDENT, student),
            json={"cohort_id": ctx["cohort"], "ranked_position_ids": [ctx["position"]]},
        )
        assert r.status_code == 422
        assert self.reason(r)["field"] == "cohort_id"
        assert "not open" in self.reason(r)["reason"]

    async def test_capacity_and_dates(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        headers = driver.auth(Role.COMPANY, ctx["company"])
        base = {
            "cohort_id": ctx["cohort"],
            "title": "t",
            "track": "production_line",
            "paid": False,
            "location": "Kokura",
        }
        r = await driver.client.post(
            "/positions",
            headers=headers,
            json={**base, "capacity": 0, "start_date": day("07-01"), "end_date": day("08-01")},
        )
        assert r.status_code == 422
        assert self.reason(r)["field"] == "capacity"
        r = await driver.client.post(
            "/positions",
            headers=headers,
            json={**base, "capacity": 1, "start_date": day("08-01"), "end_date": day("07-01")},
        )
        assert r.status_code == 422
        assert "end_date must be after start_date" in self.reason(r)["reason"]

    async def test_missing_consent(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        student = await driver.student(consent_to_data_use=False)
        r = await driver.client.post(
            "/applications",
            headers=driver.auth(Role.STUDENT, student),
            json={"cohort_id": ctx["cohort"], "ranked_position_ids": [ctx["position"]]},
        )
        assert r.status_code == 422
        assert self.reason(r)["field"] == "consent_to_data_use"

    async def test_unapproved_company_cannot_publish(self, service) -> None:
        driver, _ = service
        cohort = await driver.cohort()
        company = await driver.company(approve=False)
        r = await driver.client.post(
            "/positions",
            headers=driver.auth(Role.COMPANY, company),
            json={
                "cohort_id": cohort,
                "title": "t",
                "track": "joint_research",
                "capacity": 1,
                "paid": False,
                "start_date": day("07-01"),
                "end_date": day("08-01"),
                "location": "Tobata",
            },
        )
        assert r.status_code == 409
        assert "approve" in self.reason(r)["reason"]

    async def test_wrong_role_and_not_owner(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        alice, bob = await driver.student(), await driver.student()
        application = await driver.apply(alice, ctx["cohort"], [ctx["position"]])
        # Bob cannot read Alice's application: it does not exist for him.
        r = await driver.client.get(
            f"/applications/{application['id']}", headers=driver.auth(Role.STUDENT, bob)
        )
        assert r.status_code == 404
        # Nor her profile: it does not exist for him either.
        r = await driver.client.get(f"/students/{alice}", headers=driver.auth(Role.STUDENT, bob))
        assert r.status_code == 404
        # A student may not publish positions.
        r = await driver.client.post(
            "/positions", headers=driver.auth(Role.STUDENT, alice), json={}
        )
        assert r.status_code == 403
        assert "student" in self.reason(r)["reason"]
        # Another company may not close this company's position or see its applicants: for it
        # the position does not exist.
        other = await driver.company()
        r = await driver.client.post(
            f"/positions/{ctx['position']}/close", headers=driver.auth(Role.COMPANY, other)
        )
        assert r.status_code == 404
        r = await driver.client.get(
            f"/positions/{ctx['position']}/applicants", headers=driver.auth(Role.COMPANY, other)
        )
        assert r.status_code == 404
        # A company sees only its own positions; students see every position.
        listed = await driver.call("GET", "/positions", driver.auth(Role.COMPANY, other))
        assert ctx["position"] not in {p["id"] for p in listed}
        r = await driver.client.get(
            f"/positions/{ctx['position']}", headers=driver.auth(Role.COMPANY, other)
        )
        assert r.status_code == 404
        r = await driver.client.get(
            f"/positions?company_id={ctx['company']}", headers=driver.auth(Role.COMPANY, other)
        )
        assert r.status_code == 404
        listed = await driver.call("GET", "/positions", driver.auth(Role.STUDENT, bob))
        assert ctx["position"] in {p["id"] for p in listed}
        # Even the owning company does not read the application (the student's other choices
        # are not its business): it sees its applicants at /positions/{id}/applicants.
        r = await driver.client.get(
            f"/applications/{application['id']}", headers=driver.auth(Role.COMPANY, ctx["company"])
        )
        assert r.status_code == 403
        # No token at all.
        r = await driver.client.get(f"/applications/{application['id']}")
        assert r.status_code == 401
        # A student lists only their own.
        mine = await driver.call("GET", "/applications", driver.auth(Role.STUDENT, bob))
        assert mine == []

    async def test_ranking_only_applicants(self, service) -> None:
        driver, _ = service
        ctx = await self._setup(driver)
        student = await driver.student()
        await driver.apply(student, ctx["cohort"], [ctx["position"]])
        r = await driver.client.put(
            f"/positions/{ctx['position']}/ranking",
            headers=driver.auth(Role.COMPANY, ctx["company"]),
            json={"ranked_student_ids": [student, "stu-stranger"]},
        )
        assert r.status_code == 422
        assert self.reason(r)["field"] == "ranked_student_ids.1"


async def test_docs_health_and_asyncapi_are_served_locally(service) -> None:
    driver, settings = service
    docs = await driver.client.get("/docs")
    assert docs.status_code == 200
    assert "https://" not in docs.text  # no CDN: the page works on a closed network
    assert (await driver.client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200
    ready = (await driver.client.get("/health/ready")).json()
    assert ready["ready"] is True and ready["mongodb"] and ready["kafka"]
    spec = (await driver.client.get("/asyncapi.json")).json()
    addresses = json.dumps(spec["channels"])
    for topic in ("application-submitted", "position-published", "contacts"):
        assert settings.topic(topic) in addresses
