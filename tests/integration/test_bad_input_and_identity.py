"""Issue 8, probed as an attacker would, against the services on real uvicorn servers over the
real Kafka, MongoDB and SMTP sink: no request can hurt a service, reach what is not its own, or
confuse who is who."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from shared.auth import Role
from shared.events import (
    ApplicantsRanked,
    PositionPublished,
    RoundCompleted,
    StudentProfileUpdated,
    make_event,
)
from shared.kafka import dlq_topic
from shared.outbox import RECORD_OVERHEAD
from tests.driver import ApplicationsDriver, day
from tests.infra import Infra, TopicReader, eventually, read_mailbox, running
from tests.serving import served

pytestmark = pytest.mark.integration

TAG = "attack"
ROOT = Path(__file__).resolve().parents[2]
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@dataclass
class Stack:
    infra: Infra
    urls: dict[str, str]
    apps: ApplicationsDriver
    mongo: AsyncMongoClient[dict[str, Any]]
    settings: dict[str, Any]

    def topic(self, name: str) -> str:
        return self.settings["applications"].topic(name)

    def mail_to(self, address: str) -> list[Any]:
        assert self.infra.mailbox is not None
        return [m for m in read_mailbox(self.infra.mailbox) if address in str(m["To"])]


@pytest.fixture(scope="module")
def servers(infra: Infra) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    settings = {
        "applications": infra.settings(ApplicationsSettings, tag=TAG, database="atk_apps"),
        "matching": infra.settings(MatchingSettings, tag=TAG, database="atk_matching"),
        "notifications": infra.settings(
            NotificationsSettings,
            tag=TAG,
            database="atk_notifications",
            smtp_host=infra.smtp_host,
            smtp_port=infra.smtp_port,
            delivery_poll_seconds=0.2,
            coordinator_email=f"coordinator-{TAG}@city.example",
        ),
    }
    factories = {
        "applications": create_applications,
        "matching": create_matching,
        "notifications": create_notifications,
    }
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(served(lambda f=factories[name], s=settings[name]: f(s)))
            for name in factories
        }
        yield urls, settings


@pytest.fixture(scope="module")
async def stack(
    infra: Infra, servers: tuple[dict[str, str], dict[str, Any]]
) -> AsyncIterator[Stack]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read what was sent")
    urls, settings = servers
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    async with httpx.AsyncClient(base_url=urls["applications"], timeout=30) as client:
        yield Stack(infra, urls, ApplicationsDriver(client, infra), mongo, settings)
    await mongo.close()


def reason(response: httpx.Response) -> dict[str, Any]:
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, response.text
    return detail[0]  # type: ignore[no-any-return]


def profile(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "林怡君",
        "email": "attack@example.tw",
        "department": "Electrical Engineering",
        "degree_program": "master",
        "graduation_year": 2028,
        "skills": ["python"],
        "available_from": day("06-15"),
        "available_to": day("09-15"),
        "consent_to_data_use": True,
        **overrides,
    }


async def test_an_oversized_profile_is_refused_and_later_applications_still_reach_notifications(
    stack: Stack,
) -> None:
    d = stack.apps
    student = await d.student()
    headers = d.auth(Role.STUDENT, student)
    # 50 skills of 15 KB: under the body limit, over the bounds of a skill.
    r = await d.client.put(
        f"/students/{student}", headers=headers, json=profile(skills=["x" * 15_000] * 50)
    )
    assert r.status_code == 422, r.text
    assert reason(r)["field"] == "skills.0"
    assert "at most 80 characters" in reason(r)["reason"]
    # 50 skills of 30 KB (the 1.5 MB event): refused by size before anything parses it.
    r = await d.client.put(
        f"/students/{student}", headers=headers, json=profile(skills=["x" * 30_000] * 50)
    )
    assert r.status_code == 413
    # A company's long required skills likewise.
    cohort = await d.cohort()
    company = await d.company()
    r = await d.client.post(
        "/positions",
        headers=d.auth(Role.COMPANY, company),
        json={
            "cohort_id": cohort,
            "title": "t",
            "track": "production_line",
            "capacity": 1,
            "paid": False,
            "start_date": day("07-01"),
            "end_date": day("08-01"),
            "location": "Tobata",
            "required_skills": ["y" * 20_000] * 30,
        },
    )
    assert r.status_code == 422 and reason(r)["field"] == "required_skills.0"

    # The service is not stuck: a later application is published and its student is told.
    position = await d.position(company, cohort)
    await d.student(student, language="en")
    await d.apply(student, cohort, [position])
    mails = await eventually(lambda: stack.mail_to(f"{student}@example.tw"), timeout=30)
    assert str(mails[0]["X-Template"]) == "application_submitted.student"
    ready = await d.client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["outbox_relay"] is True


def broker_limit_between_profile_and_application(skills: list[str]) -> int:
    """A broker message limit that a student-profile-updated with these skills fits under,
    and an application-submitted with the same facts and ten ranked positions does not."""
    profile_event = make_event(
        StudentProfileUpdated(
            student_id="stu-0000",
            department="Electrical Engineering",
            degree_program="master",
            graduation_year=2028,
            jlpt_level="N2",
            english_level="B2",
            skills=skills,
            available_from=day("06-15"),  # type: ignore[arg-type]
            available_to=day("09-15"),  # type: ignore[arg-type]
            consent_to_data_use=True,
            updated_at=datetime.now(UTC),
        ),
        source="/services/applications",
        subject="stu-0000",
    )
    # + the key and content-type header (100), and the trace headers every record carries:
    # traceparent (11 + 55) and request-id (10 + a generated 32).
    return len(profile_event.to_bytes()) + RECORD_OVERHEAD + 100 + 108


async def test_an_event_over_the_broker_limit_is_refused_and_never_reaches_the_outbox(
    infra: Infra,
) -> None:
    skills = [f"{i:02d}" + "k" * 18 for i in range(50)]  # 50 x 20 characters
    limit = broker_limit_between_profile_and_application(skills)
    settings = infra.settings(
        ApplicationsSettings, tag=f"{TAG}small", database="atk_small", kafka_max_message_bytes=limit
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    db = mongo[settings.database]
    async with running(create_applications(settings)) as client:
        d = ApplicationsDriver(client, infra)
        cohort = await d.cohort()
        company = await d.company()
        positions = [await d.position(company, cohort) for _ in range(10)]
        # A profile whose student-profile-updated would be over the limit: 422, nothing kept.
        before = await db["outbox"].count_documents({})
        r = await client.put(
            "/students/stu-toolarge",
            headers=d.auth(Role.STUDENT, "stu-toolarge"),
            # Within the bounds (50 skills of at most 80 characters), over the broker's limit.
            json=profile(skills=skills[:40] + [f"{i:02d}" + "x" * 78 for i in range(10)]),
        )
        assert r.status_code == 422, r.text
        assert reason(r)["field"] == "skills", r.text
        assert f"at most {limit}" in reason(r)["reason"]
        assert await db["outbox"].count_documents({}) == before
        assert await db["students"].find_one({"_id": "stu-toolarge"}) is None
        # A profile that fits, then an application whose event (the same facts and ten ranked
        # positions) does not: refused, neither the application nor its event kept.
        big = await d.student(skills=skills)
        before = await db["outbox"].count_documents({})
        r = await client.post(
            "/applications",
            headers=d.auth(Role.STUDENT, big),
            json={"cohort_id": cohort, "ranked_position_ids": positions},
        )
        assert r.status_code == 422, r.text
        assert "application-submitted message" in reason(r)["reason"]
        assert await db["outbox"].count_documents({}) == before
        assert await db["applications"].count_documents({"student_id": big}) == 0
        # The next, normal application goes out as usual: nothing is stuck behind the refusal.
        submitted = await d.apply(await d.student(), cohort, positions[:1])
        async with TopicReader(
            infra.kafka_bootstrap, settings.topic("application-submitted")
        ) as reader:
            await reader.wait_for(lambda rs: any(r.key == submitted["id"].encode() for r in rs))
    await mongo.close()


async def test_a_student_token_with_a_company_id_cannot_touch_the_company_or_its_contact(
    stack: Stack,
) -> None:
    d = stack.apps
    company = await d.company()
    notifications = stack.mongo[stack.settings["notifications"].database]["contacts"]

    async def company_contact() -> dict[str, Any] | None:
        return await notifications.find_one({"_id": f"company:{company}"})

    original = await eventually(company_contact, timeout=30)
    forged = {"Authorization": f"Bearer {stack.infra.forged_token('student', company)}"}
    evil = profile(name="Attacker", email="attacker@evil.example")
    for method, path, body in [
        ("PUT", f"/students/{company}", evil),
        ("GET", f"/students/{company}", None),
        ("DELETE", f"/students/{company}", None),
        ("GET", f"/companies/{company}", None),
        ("GET", "/applications", None),
    ]:
        r = await d.client.request(method, path, headers=forged, json=body)
        assert r.status_code == 401, (method, path, r.text)
        assert "is not a student id" in reason(r)["reason"]
    # Not even the coordinator can create a student under a company's id.
    r = await d.client.put(f"/students/{company}", headers=d.coordinator, json=evil)
    assert r.status_code == 422 and reason(r)["field"] == "student_id"

    # And a contact record that claims a company's id for a student, or that is sent under
    # another party's key, is dead-lettered: the company's contact stays as it was.
    topic = stack.topic("contacts")
    record = {"party_id": company, "party_type": "student", "name": "A", "email": "a@evil.example"}
    hijack = {"party_id": "stu-evil", "party_type": "student", "name": "A", "email": "a@evil.ex"}
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka_bootstrap)
    await producer.start()
    try:
        async with TopicReader(stack.infra.kafka_bootstrap, dlq_topic(topic)) as dlq:
            await producer.send_and_wait(
                topic, key=f"student:{company}".encode(), value=json.dumps(record).encode()
            )
            await producer.send_and_wait(
                topic, key=f"company:{company}".encode(), value=json.dumps(hijack).encode()
            )
            await producer.send_and_wait(topic, key=company.encode(), value=None)  # no role
            records = await dlq.wait_for(
                lambda rs: len([r for r in rs if company.encode() in (r.key or b"")]) >= 3
            )
    finally:
        await producer.stop()
    errors = {r.key: dict(r.headers)["dlq-error"].decode() for r in records}
    assert "is not a student id" in errors[f"student:{company}".encode()]
    assert "was sent under the key" in errors[f"company:{company}".encode()]
    assert "not '<role>:<id>'" in errors[company.encode()]
    assert all(dict(r.headers)["dlq-attempts"] == b"1" for r in records)
    assert await company_contact() == original
    assert await notifications.find_one({"_id": f"student:{company}"}) is None


async def test_a_20000_item_ranking_is_refused_in_under_100ms_while_live_stays_fast(
    stack: Stack,
) -> None:
    d = stack.apps
    company = await d.company()
    position = await d.position(company, await d.cohort())
    ranking = {"ranked_student_ids": [f"stu-{i}" for i in range(20_000)]}
    base = stack.urls["applications"]
    live_latencies: list[float] = []
    done = asyncio.Event()

    async def watch_live() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                r = await client.get("/health/live")
                live_latencies.append(time.perf_counter() - started)
                assert r.status_code == 200
                await asyncio.sleep(0.005)

    refused: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = d.auth(Role.COMPANY, company)
        watcher = asyncio.create_task(watch_live())
        # Warm both connections (first request, watcher's client) before anything is timed.
        for _ in range(2):
            await client.put(f"/positions/{position}/ranking", headers=headers, json=ranking)
        await asyncio.sleep(0.1)
        for _ in range(5):
            started = time.perf_counter()
            r = await client.put(f"/positions/{position}/ranking", headers=headers, json=ranking)
            refused.append(time.perf_counter() - started)
            assert r.status_code == 422
            assert reason(r)["field"] == "ranked_student_ids"
            assert "at most 1000" in reason(r)["reason"]
        done.set()
        await watcher
    assert max(refused) < 0.1, refused
    assert live_latencies and max(live_latencies) < 0.1, live_latencies


async def test_each_former_500_is_now_a_422_naming_the_field(stack: Stack) -> None:
    d = stack.apps
    now = datetime.now(UTC)
    # A cohort window with one naive and one aware date-time.
    r = await d.client.post(
        "/cohorts",
        headers=d.coordinator,
        json={
            "id": "2027-naive",
            "name": "x",
            "application_opens": now.replace(tzinfo=None).isoformat(),
            "application_closes": (now + timedelta(days=3)).isoformat(),
        },
    )
    assert r.status_code == 422 and reason(r)["field"] == "application_opens"
    assert "time zone" in reason(r)["reason"]
    # Rounds with a seed beyond 64 bits, or a deadline a million years away, or infinite.
    cohort = await d.cohort()
    async with httpx.AsyncClient(base_url=stack.urls["matching"], timeout=30) as matching:
        hours = "respond_within_hours"
        for body, field in [
            (f'"seed": {2**63}', "seed"),
            ('"seed": -1', "seed"),
            (f'"{hours}": 1e12', hours),
            (f'"{hours}": Infinity', hours),  # Python's JSON parser reads these
            (f'"{hours}": NaN', hours),
        ]:
            body = f'{{"cohort_id": "{cohort}", {body}}}'
            r = await matching.post(
                "/rounds",
                headers={**d.coordinator, "content-type": "application/json"},
                content=body,
            )
            assert r.status_code == 422, (body, r.text)
            assert reason(r)["field"] == field, (body, r.text)


async def test_inputs_that_were_silently_accepted_are_refused(stack: Stack) -> None:
    d = stack.apps
    student = await d.student()
    headers = d.auth(Role.STUDENT, student)

    async def put(**overrides: Any) -> httpx.Response:
        return await d.client.put(
            f"/students/{student}", headers=headers, json=profile(**overrides)
        )

    # A 10 MB university: refused by size, with or without a token, before any parsing.
    huge = json.dumps(profile(university="U" * 10_000_000))
    r = await d.client.put(
        f"/students/{student}", content=huge, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    r = await d.client.put(
        f"/students/{student}", content=huge, headers={**headers, "content-type": "x/json"}
    )
    assert r.status_code == 413
    r = await put(university="U" * 1000)
    assert r.status_code == 422 and reason(r)["field"] == "university"
    # Coercions that hide mistakes.
    r = await put(consent_to_data_use=1)
    assert r.status_code == 422 and reason(r)["field"] == "consent_to_data_use"
    # Dates from year 1 to 9999.
    r = await put(available_from="0001-01-01")
    assert r.status_code == 422 and reason(r)["field"] == "available_from"
    r = await put(available_to="9999-12-31")
    assert r.status_code == 422 and reason(r)["field"] == "available_to"
    # CR/LF in what ends up in an e-mail header.
    r = await put(name="Evil\r\nBcc: everyone@example.tw")
    assert r.status_code == 422 and reason(r)["field"] == "name"
    r = await d.client.post(
        "/companies",
        json={
            "name_ja": "株式会社\r\nX-Injected: 1",
            "name_en": "Co",
            "sector": "automotive",
            "ward": "Kokura",
            "address": "1",
            "contact": {"name": "担当", "email": "hr@co.example"},
        },
    )
    assert r.status_code == 422 and reason(r)["field"] == "name_ja"
    # A position that is paid "yes", or dated 2020.
    cohort = await d.cohort()
    company = await d.company()
    base = {
        "cohort_id": cohort,
        "title": "t",
        "track": "production_line",
        "capacity": 1,
        "paid": False,
        "start_date": day("07-01"),
        "end_date": day("08-01"),
        "location": "Tobata",
    }
    for overrides, field in [
        ({"paid": "yes"}, "paid"),
        ({"capacity": "1"}, "capacity"),
        ({"start_date": "2020-07-01", "end_date": "2020-08-01"}, "start_date"),
    ]:
        r = await d.client.post(
            "/positions", headers=d.auth(Role.COMPANY, company), json={**base, **overrides}
        )
        assert r.status_code == 422, (overrides, r.text)
        assert reason(r)["field"] == field, (overrides, r.text)


async def test_out_of_range_events_are_dead_lettered_at_the_first_attempt(stack: Stack) -> None:
    """An int beyond 64 bits used to fail the MongoDB write three times, a naive `ranked_at`
    raised TypeError in the handler: now the consumer refuses both when it parses them."""
    now = datetime.now(UTC)
    ranked = make_event(
        ApplicantsRanked(
            position_id="pos-naive",
            cohort_id="2027-summer",
            company_id="co-0123456789ab",
            ranked_student_ids=["stu-1"],
            ranked_at=now,
        ),
        source="/tests",
        subject="pos-naive",
    ).model_dump(mode="json")
    ranked["data"]["ranked_at"] = now.replace(tzinfo=None).isoformat()
    published = make_event(
        PositionPublished(
            position_id="pos-huge",
            cohort_id="2027-summer",
            company_id="co-0123456789ab",
            company_name_ja="社",
            company_name_en="Co",
            sector="automotive",
            track="joint_research",
            title="t",
            capacity=1,
            paid=False,
            start_date=day("07-01"),
            end_date=day("08-01"),
            location="x",
        ),
        source="/tests",
        subject="pos-huge",
    ).model_dump(mode="json")
    published["data"]["capacity"] = 2**64
    completed = make_event(
        RoundCompleted(
            round_id="round-huge",
            cohort_id="2027-summer",
            round_number=1,
            algorithm_version="x",
            seed=1,
            input_hash="h",
            students=0,
            seats=0,
            proposed=0,
            unmatched=0,
            excluded_pairs=0,
            stable=True,
            completed_at=now,
        ),
        source="/tests",
        subject="round-huge",
    ).model_dump(mode="json")
    completed["data"]["seed"] = 2**64
    sent = [
        ("applicants-ranked", b"pos-naive", ranked, "ranked_at"),
        ("position-published", b"pos-huge", published, "capacity"),
        ("round-completed", b"round-huge", completed, "seed"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka_bootstrap)
    await producer.start()
    try:
        for topic, key, value, _ in sent:
            await producer.send_and_wait(
                stack.topic(topic), key=key, value=json.dumps(value).encode()
            )
    finally:
        await producer.stop()
    for topic, key, _, field in sent:
        async with TopicReader(stack.infra.kafka_bootstrap, dlq_topic(stack.topic(topic))) as dlq:
            records = await dlq.wait_for(lambda rs, k=key: any(r.key == k for r in rs))
        for record in (r for r in records if r.key == key):
            headers = dict(record.headers)
            assert headers["dlq-attempts"] == b"1", (topic, headers)
            assert headers["dlq-error"].startswith(b"invalid event"), headers
            assert field.encode() in headers["dlq-error"], headers


async def test_every_response_carries_the_security_headers_and_no_banner(stack: Stack) -> None:
    d = stack.apps
    async with httpx.AsyncClient(timeout=30) as client:
        for url, headers in [
            (f"{stack.urls['applications']}/health/live", {}),
            (f"{stack.urls['applications']}/cohorts", d.coordinator),
            (f"{stack.urls['applications']}/cohorts", {}),  # 401
            (f"{stack.urls['matching']}/proposals", d.auth(Role.STUDENT, "stu-x")),
            (f"{stack.urls['notifications']}/deliveries", d.auth(Role.STUDENT, "stu-x")),  # 403
            (f"{stack.urls['applications']}/no-such-page", {}),  # 404
            (f"{stack.urls['applications']}/docs", {}),
        ]:
            r = await client.get(url, headers=headers)
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, (url, name, dict(r.headers))
            assert "server" not in r.headers, (url, r.headers["server"])
        r = await client.put(
            f"{stack.urls['applications']}/students/stu-x", content=b"{" + b" " * 2_000_000
        )
        assert r.status_code == 413 and r.headers["cache-control"] == "no-store"
        r = await client.request("OPTIONS", f"{stack.urls['applications']}/cohorts")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


async def test_the_openapi_documents_the_real_error_answers(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for service, base in stack.urls.items():
            spec = (await client.get(f"{base}/openapi.json")).json()
            schemas = spec["components"]["schemas"]
            assert "HTTPValidationError" not in schemas, service
            assert schemas["ErrorBody"]["properties"]["detail"]["items"] == {
                "$ref": "#/components/schemas/ErrorItem"
            }
            item = schemas["ErrorItem"]
            assert set(item["properties"]) == {
                "field",
                "reason",
                "code",
                "current_state",
                "allowed",
            }
            assert set(item["required"]) == {"field", "reason"}
            for path, methods in spec["paths"].items():
                for method, operation in methods.items():
                    where = (service, method, path)
                    codes = set(operation["responses"])
                    assert "413" in codes, where
                    if operation.get("security"):
                        assert {"401", "403"} & codes, where
                    else:
                        assert not {"401", "403"} & codes, where  # nothing to refuse
                    if operation.get("parameters") or "requestBody" in operation:
                        assert {"404", "422"} <= codes, where
                    if method != "get":
                        assert "409" in codes, where
                    if path.startswith("/health/"):
                        assert "503" in codes, where
                    for code in codes - {"200", "201", "503"}:
                        schema = operation["responses"][code]["content"]["application/json"]
                        assert schema["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
            # Role checks are documented where they apply.
            if service == "notifications":
                assert "403" in spec["paths"]["/deliveries"]["get"]["responses"]

    # A lifecycle's 409 is what the document says: the field, the reason, the current state
    # and what is allowed from it.
    d = stack.apps
    cohort = await d.cohort(open_=False)
    r = await d.client.post(f"/cohorts/{cohort}/finish", headers=d.coordinator)
    assert r.status_code == 409, r.text
    (problem,) = r.json()["detail"]
    assert set(problem) <= {"field", "reason", "current_state", "allowed"}
    assert problem["current_state"] == "draft"
    assert "open" in problem["allowed"] and problem["reason"]


def test_services_refuse_to_start_without_a_jwt_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    for name in ("applications", "matching", "notifications"):
        result = subprocess.run(
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env={**env, "LOG_JSON": "false"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "not starting: JWT_SECRET is not set" in result.stderr, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "services.applications"],
        cwd=ROOT,
        env={**env, "JWT_SECRET": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "too short" in result.stderr, result.stderr
