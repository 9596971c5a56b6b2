"""The matching service end to end, with the applications service, on the real servers:
rounds, answers, placements, residual rounds, expiry, replay."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from shared.auth import Role
from tests.driver import ApplicationsDriver, day
from tests.infra import Infra, TopicReader, eventually, running

pytestmark = pytest.mark.integration


@dataclass
class Platform:
    apps: ApplicationsDriver
    matching: httpx.AsyncClient
    settings: MatchingSettings
    mongo: AsyncMongoClient[dict[str, Any]]
    infra: Infra

    @property
    def db(self) -> Any:
        return self.mongo[self.settings.database]

    async def synced(self, cohort_id: str, applications: int, positions: int) -> None:
        """Wait until the matching read model has caught up with the applications service."""

        async def caught_up() -> bool:
            apps = await self.db["applications"].count_documents(
                {"cohort_id": cohort_id, "ranked_position_ids": {"$exists": True}}
            )
            pos = await self.db["positions"].count_documents(
                {"cohort_id": cohort_id, "capacity": {"$exists": True}}
            )
            return apps >= applications and pos >= positions

        await eventually(caught_up)

    async def close(self, cohort_id: str) -> None:
        """Close the cohort's window and wait until matching knows (a round needs it)."""
        await self.apps.close(cohort_id)
        await eventually(
            lambda: self.has("cohorts", {"_id": cohort_id, "state": {"$ne": "open"}}, 1)
        )

    async def has(self, collection: str, query: dict[str, Any], count: int) -> bool:
        return await self.db[collection].count_documents(query) >= count

    async def call(
        self, method: str, url: str, role: Role, sub: str, json_body: Any = None, expect: int = 200
    ) -> Any:
        response = await self.matching.request(
            method, url, headers=self.apps.auth(role, sub), json=json_body
        )
        assert response.status_code == expect, (url, response.status_code, response.text)
        return response.json()

    async def run_round(self, cohort_id: str, **extra: Any) -> dict[str, Any]:
        return await self.call(
            "POST",
            "/rounds",
            Role.COORDINATOR,
            "coordinator",
            {"cohort_id": cohort_id, "seed": 7, **extra},
            expect=201,
        )

    async def proposals(self, cohort_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        docs = await self.call("GET", f"/proposals?cohort_id={cohort_id}", Role.COORDINATOR, "c")
        return {(d["student_id"], d["position_id"]): d for d in docs}


@pytest.fixture(scope="module")
async def platform(infra: Infra) -> AsyncIterator[Platform]:
    tag = "matchflow"
    apps_settings = infra.settings(ApplicationsSettings, tag=tag, database="mf_applications")
    settings = infra.settings(
        MatchingSettings, tag=tag, database="mf_matching", expiry_sweep_seconds=0.2
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    async with (
        running(create_applications(apps_settings)) as apps_client,
        running(create_matching(settings)) as matching_client,
    ):
        yield Platform(
            ApplicationsDriver(apps_client, infra), matching_client, settings, mongo, infra
        )
    await mongo.close()


async def test_round_answers_placement_and_residual_round(platform: Platform) -> None:
    d = platform.apps
    cohort = await d.cohort()
    semi = await d.company(sector="semiconductor")
    auto = await d.company(sector="automotive")
    p1 = await d.position(semi, cohort, capacity=1)
    p2 = await d.position(auto, cohort, capacity=1, paid=False)
    a = await d.student()
    b = await d.student()
    low = await d.student(jlpt_level="N4")  # below p1's N3 minimum
    late = await d.student()
    await d.apply(a, cohort, [p1, p2])
    await d.apply(b, cohort, [p1])
    await d.apply(low, cohort, [p1])
    await d.apply(late, cohort, [p2])
    await d.rank(semi, p1, [b, a, low])
    await d.rank(auto, p2, [a, late])
    await platform.synced(cohort, applications=4, positions=2)
    await eventually(lambda: platform.has("rankings", {"cohort_id": cohort}, 2))
    await platform.close(cohort)

    first = await platform.run_round(cohort)
    assert first["certificate"]["stable"] and first["certificate"]["valid"]
    assert first["statistics"]["proposed"] == 2
    assert {(p["student_id"], p["position_id"]) for p in first["pairs"]} == {(b, p1), (a, p2)}
    assert set(first["unmatched_student_ids"]) == {low, late}
    exclusions = await platform.call(
        "GET", f"/rounds/{first['id']}/exclusions", Role.COORDINATOR, "c"
    )
    assert {
        "student_id": low,
        "position_id": p1,
        "reason": "jlpt_below_minimum",
        "detail": "JLPT N4 below the required N3",
    } in exclusions

    proposals = await platform.proposals(cohort)
    b_p1, a_p2 = proposals[(b, p1)], proposals[(a, p2)]
    assert b_p1["residence_status"] == "designated_activities"
    assert a_p2["residence_status"] == "temporary_visitor"  # unpaid, 62 days

    # Wrong party (the proposal does not exist for them), wrong role.
    await platform.call("POST", f"/proposals/{b_p1['id']}/accept", Role.STUDENT, a, expect=404)
    await platform.call("POST", f"/proposals/{b_p1['id']}/accept", Role.COMPANY, auto, expect=404)
    await platform.call(
        "POST", f"/proposals/{b_p1['id']}/accept", Role.COORDINATOR, "c", expect=403
    )
    # Both sides accept: a placement.
    await platform.call("POST", f"/proposals/{b_p1['id']}/accept", Role.STUDENT, b)
    again = await platform.call(
        "POST", f"/proposals/{b_p1['id']}/accept", Role.STUDENT, b, expect=409
    )
    assert "already answered" in again["detail"][0]["reason"]
    confirmed = await platform.call("POST", f"/proposals/{b_p1['id']}/accept", Role.COMPANY, semi)
    assert confirmed["status"] == "confirmed"

    async with TopicReader(
        platform.infra.kafka_bootstrap, platform.settings.topic("placement-confirmed")
    ) as reader:
        records = await reader.wait_for(
            lambda rs: any(json.loads(r.value)["data"]["proposal_id"] == b_p1["id"] for r in rs)
        )
    placement = next(
        json.loads(r.value)["data"]
        for r in records
        if json.loads(r.value)["data"]["proposal_id"] == b_p1["id"]
    )
    assert placement["student_id"] == b
    assert placement["residence_status"] == "designated_activities"
    assert placement["start_date"] == day("07-01")

    # A declines: the seat goes to the next eligible student in a residual round.
    declined = await platform.call("POST", f"/proposals/{a_p2['id']}/decline", Role.STUDENT, a)
    assert declined["status"] == "declined"
    await platform.call("POST", f"/proposals/{a_p2['id']}/accept", Role.COMPANY, auto, expect=409)
    second = await platform.run_round(cohort)
    assert [(p["student_id"], p["position_id"]) for p in second["pairs"]] == [(late, p2)]
    second_exclusions = await platform.call(
        "GET", f"/rounds/{second['id']}/exclusions", Role.COORDINATOR, "c"
    )
    reasons = {(e["student_id"], e["position_id"]): e["reason"] for e in second_exclusions}
    assert reasons[(a, p2)] == "previously_declined"
    assert reasons[(a, p1)] == "position_unavailable"  # its one seat is confirmed
    assert b not in {e["student_id"] for e in second_exclusions}  # placed: not in the market
    assert second["statistics"]["seats"] == 1

    # Replay: same input and seed, the identical result.
    for round_doc in (first, second):
        replayed = await platform.call(
            "POST", f"/rounds/{round_doc['id']}/replay", Role.COORDINATOR, "c"
        )
        assert replayed["identical"] and replayed["input_hash_matches"], replayed

    stats = await platform.call("GET", f"/cohorts/{cohort}/statistics", Role.COORDINATOR, "c")
    assert stats["placements"] == 1
    assert stats["proposals"] == {"confirmed": 1, "declined": 1, "proposed": 1}

    async with TopicReader(
        platform.infra.kafka_bootstrap, platform.settings.topic("round-completed")
    ) as reader:
        records = await reader.wait_for(
            lambda rs: sum(json.loads(r.value)["data"]["cohort_id"] == cohort for r in rs) >= 2
        )
    completed = [
        json.loads(r.value)["data"]
        for r in records
        if json.loads(r.value)["data"]["cohort_id"] == cohort
    ]
    # Different rounds are different keys, so different partitions: no order between them.
    assert sorted(c["round_number"] for c in completed) == [1, 2]
    assert all(c["stable"] for c in completed)


async def test_an_unanswered_proposal_expires_and_frees_its_seat(platform: Platform) -> None:
    d = platform.apps
    cohort = await d.cohort()
    company = await d.company(sector="robotics_ai")
    position = await d.position(company, cohort, capacity=1)
    first, second = await d.student(), await d.student()
    await d.apply(first, cohort, [position])
    await d.apply(second, cohort, [position])
    await d.rank(company, position, [first, second])
    await platform.synced(cohort, applications=2, positions=1)
    await eventually(lambda: platform.has("rankings", {"cohort_id": cohort}, 1))
    await platform.close(cohort)

    round_doc = await platform.run_round(cohort, respond_within_hours=1 / 3600)  # one second
    assert [(p["student_id"]) for p in round_doc["pairs"]] == [first]
    proposal = (await platform.proposals(cohort))[(first, position)]

    async with TopicReader(
        platform.infra.kafka_bootstrap, platform.settings.topic("match-expired")
    ) as reader:
        await reader.wait_for(
            lambda rs: any(json.loads(r.value)["data"]["proposal_id"] == proposal["id"] for r in rs)
        )
    late = await platform.call(
        "POST", f"/proposals/{proposal['id']}/accept", Role.STUDENT, first, expect=409
    )
    assert "expired" in late["detail"][0]["reason"]
    residual = await platform.run_round(cohort)
    assert [(p["student_id"], p["position_id"]) for p in residual["pairs"]] == [(second, position)]


async def test_answer_after_deadline_is_refused(platform: Platform) -> None:
    d = platform.apps
    cohort = await d.cohort()
    company = await d.company()
    position = await d.position(company, cohort)
    student = await d.student()
    await d.apply(student, cohort, [position])
    await platform.synced(cohort, applications=1, positions=1)
    # Stop the sweep from expiring it first: answer in the window between deadline and sweep
    # is what we test, so set the deadline in the past directly.
    await platform.close(cohort)
    await platform.run_round(cohort)
    proposal = (await platform.proposals(cohort))[(student, position)]
    await platform.db["proposals"].update_one(
        {"_id": proposal["id"]},
        {"$set": {"respond_by": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    r = await platform.matching.post(
        f"/proposals/{proposal['id']}/accept", headers=d.auth(Role.COMPANY, company)
    )
    assert r.status_code == 409
    body = r.json()["detail"][0]
    assert "deadline" in body["reason"] or "expired" in body["reason"]


async def test_read_model_replays_from_offset_zero_to_the_same_state(
    platform: Platform, infra: Infra
) -> None:
    # Everything the earlier tests published, read again by a fresh instance.
    replay_settings = infra.settings(
        MatchingSettings,
        tag="matchflow",
        database="mf_matching_replay",
        kafka_group_prefix="replay.",
    )
    async with running(create_matching(replay_settings)):
        original = platform.db
        replayed = platform.mongo[replay_settings.database]

        async def snapshot(db: Any) -> dict[str, list[dict[str, Any]]]:
            return {
                name: await db[name].find({}, sort=[("_id", 1)]).to_list()
                for name in ("positions", "applications", "rankings")
            }

        expected = await snapshot(original)
        assert expected["applications"], "the earlier tests should have left applications"
        await eventually(lambda: _same(snapshot(replayed), expected), timeout=30)


async def _same(actual: Any, expected: dict[str, list[dict[str, Any]]]) -> bool:
    got = await actual
    return got == expected


async def test_a_withdrawal_that_overtakes_its_submission_is_kept(platform: Platform) -> None:
    """The two events travel on different topics, so either may arrive first."""
    from aiokafka import AIOKafkaProducer

    from shared.events import ApplicationSubmitted, ApplicationWithdrawn, make_event

    now = datetime.now(UTC)
    withdrawn = ApplicationWithdrawn(
        application_id="app-ooo",
        cohort_id="2026-ooo",
        student_id="stu-ooo",
        reason="withdrawn",
        withdrawn_at=now,
    )
    submitted = ApplicationSubmitted(
        application_id="app-ooo",
        cohort_id="2026-ooo",
        student_id="stu-ooo",
        ranked_position_ids=["pos-x"],
        department="EE",
        degree_program="master",
        graduation_year=2027,
        available_from=day("06-01"),
        available_to=day("09-30"),
        consent_to_data_use=True,
        submitted_at=now,
    )
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    try:
        for data in (withdrawn, submitted):
            event = make_event(data, source="/tests", subject=data.key)
            await producer.send_and_wait(
                platform.settings.topic(data.event_name),
                value=event.to_bytes(),
                key=data.key.encode(),
            )
            # Wait for each to be applied, so the withdrawal really comes first.
            await eventually(
                lambda event_id=str(event.id): platform.has(
                    "processed_events", {"event_id": event_id}, 1
                )
            )
    finally:
        await producer.stop()
    doc = await platform.db["applications"].find_one({"_id": "app-ooo"})
    assert doc["state"] == "withdrawn"
    assert doc["ranked_position_ids"] == ["pos-x"]  # the facts arrived too
