"""Matching applies `application-submitted` a poll batch at a time (one bulk write of the
applications). Against the real embedded MongoDB, the batch handler must leave exactly what
the per-event steps leave: applications in order (a later submission's facts win, a state set
earlier is kept), the profile copy of each submission in its application's document, the
students' own documents untouched (student-profile-updated alone writes them: one writer per
document), and the same state when a batch is applied again."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from services.matching.handlers import register, upsert_facts
from services.matching.store import PROFILE_FIELDS, MatchingStore
from shared.events import ApplicationSubmitted, CloudEvent, make_event
from shared.mongo import Session, connect, in_transaction
from tests.infra import Infra

pytestmark = pytest.mark.integration

BatchHandler = Callable[[list[CloudEvent[Any]], Session], Any]


class Registrations:
    """Stands in for the service runtime: keeps the handlers `register` hands it."""

    def __init__(self) -> None:
        self.batch: dict[str, BatchHandler] = {}

    def consumes(self, topic: str, handler: Any) -> None:
        pass

    def consumes_batch(self, topic: str, handler: BatchHandler) -> None:
        self.batch[topic] = handler


@pytest.fixture
async def client(infra: Infra) -> AsyncIterator[Any]:
    client = connect(infra.mongodb_uri)
    try:
        yield client
    finally:
        await client.close()


def store_in(client: Any, name: str) -> MatchingStore:
    return MatchingStore(client[name], outbox=cast(Any, None))  # no outbox needed here


def submissions(seed: int, count: int) -> list[CloudEvent[Any]]:
    """Submissions of a few students, some applications resubmitted, times out of order and
    sometimes equal, so every rule of the per-event steps is exercised."""
    rng = random.Random(seed)
    base = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    events = []
    for n in range(count):
        student = f"stu-{rng.randrange(4)}"
        data = ApplicationSubmitted(
            application_id=f"app-{rng.randrange(count // 2)}",
            cohort_id="2027",
            student_id=student,
            ranked_position_ids=[f"pos-{n}"],
            department=rng.choice(["EE", "ME", "CS"]),
            degree_program=rng.choice(["bachelor", "master"]),
            graduation_year=2027 + rng.randrange(2),
            skills=[f"skill-{n}"],
            available_from="2027-06-01",
            available_to="2027-09-30",
            consent_to_data_use=True,
            submitted_at=base + timedelta(minutes=rng.randrange(6)),
        )
        events.append(make_event(data, source="/tests", subject=data.key))
    return events


async def per_event(store: MatchingStore, client: Any, events: list[CloudEvent[Any]]) -> None:
    """The per-event steps, one transaction each (what the service did before batching)."""
    for event in events:
        data: ApplicationSubmitted = event.data
        fields = data.model_dump(mode="json", exclude={"application_id"})

        async def work(session: Session, data: Any = data, fields: Any = fields) -> None:
            await upsert_facts(store.applications, data.application_id, fields, "active", session)

        await in_transaction(client, work)


async def batched(
    handler: BatchHandler, client: Any, events: list[CloudEvent[Any]], sizes: list[int]
) -> None:
    start = 0
    for size in sizes:
        chunk = events[start : start + size]
        start += size
        await in_transaction(client, lambda session, chunk=chunk: handler(chunk, session))


async def contents(store: MatchingStore) -> dict[str, list[Any]]:
    return {
        name: await store.db[name].find().sort("_id").to_list()
        for name in ("applications", "students")
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_leaves_what_the_events_one_by_one_leave(client: Any, seed: int) -> None:
    tag = uuid.uuid4().hex[:8]
    reference, subject = store_in(client, f"mb_ref_{tag}"), store_in(client, f"mb_bat_{tag}")
    runtime = Registrations()
    register(cast(Any, runtime), subject)
    handler = runtime.batch[ApplicationSubmitted.event_name]
    events = submissions(seed, 40)
    # A state set before the facts arrived (a withdrawal overtook the submission) is kept.
    for store in (reference, subject):
        await store.applications.insert_one({"_id": "app-0", "state": "withdrawn"})
        # A profile already newer than some of the submissions.
        await store.students.insert_one(
            {"_id": "stu-0", "department": "stored", "as_of": "2027-03-01T09:03:00Z"}
        )
    try:
        await per_event(reference, client, events)
        rng = random.Random(seed)
        sizes = []
        while sum(sizes) < len(events):
            sizes.append(min(rng.randrange(1, 15), len(events) - sum(sizes)))
        await batched(handler, client, events, sizes)
        expected = await contents(reference)
        assert await contents(subject) == expected
        assert expected["applications"][0] == {**expected["applications"][0], "state": "withdrawn"}
        # Each application keeps the profile copy of its last submission; the student's own
        # document is as it was.
        last = {e.data.application_id: e.data for e in events}
        for application in expected["applications"]:
            if application["_id"] in last:
                copy = last[application["_id"]].model_dump(mode="json")
                assert {k: application[k] for k in PROFILE_FIELDS} == {
                    k: copy[k] for k in PROFILE_FIELDS
                }
        assert expected["students"] == [
            {"_id": "stu-0", "department": "stored", "as_of": "2027-03-01T09:03:00Z"}
        ]

        # Applied again (a redelivery the runtime did not filter): nothing changes.
        await batched(handler, client, events, [len(events)])
        assert await contents(subject) == expected
    finally:
        await client.drop_database(f"mb_ref_{tag}")
        await client.drop_database(f"mb_bat_{tag}")
