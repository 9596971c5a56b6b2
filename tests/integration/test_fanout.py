"""Fan-out that stays linear (issue 20): a round leaving thousands of applications without a
proposal plans every notice exactly once, in transactions of bounded size; a crash midway
resumes; an event whose notices could not be planned is shown to the coordinators, who can
plan it again."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from aiokafka import AIOKafkaProducer

from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from services.notifications.domain import NOT_PLANNED, NOT_PLANNED_TEMPLATE
from services.notifications.fanout import Planner
from services.notifications.store import FANOUT_CHUNK, NotificationsStore
from shared.auth import Role
from shared.events import (
    ApplicationRef,
    ApplicationsNotMatched,
    CloudEvent,
    RoundCompleted,
    make_event,
)
from shared.events.catalog import MAX_NOT_MATCHED_PER_EVENT
from shared.kafka import dlq_topic, ensure_topics
from shared.mongo import connect, in_transaction
from tests.infra import Infra, TopicReader, eventually, running

pytestmark = pytest.mark.integration

UNMATCHED = 3_000
AT = datetime(2026, 6, 1, 9, tzinfo=UTC)
# A planned message keeps ids and the round's counts, never the event's lists: this bounds
# what one planning transaction writes (FANOUT_CHUNK messages of at most this size).
MAX_MESSAGE_BYTES = 2_048


def refs(cohort: str, count: int) -> list[ApplicationRef]:
    return [
        ApplicationRef(application_id=f"app-{cohort}-{n:05d}", student_id=f"stu-{cohort}-{n:05d}")
        for n in range(count)
    ]


def round_completed(cohort: str, unmatched: list[ApplicationRef]) -> CloudEvent[Any]:
    """The round's event; `unmatched` non-empty is the shape producers sent before
    applications-not-matched (a replay still plans it, in chunks)."""
    data = RoundCompleted(
        round_id=f"round-{cohort}",
        cohort_id=cohort,
        round_number=1,
        algorithm_version="gs-1",
        seed=7,
        input_hash="h",
        students=UNMATCHED + 10,
        seats=10,
        proposed=10,
        unmatched=UNMATCHED,
        excluded_pairs=0,
        stable=True,
        completed_at=AT,
        unmatched_applications=unmatched,
    )
    return make_event(data, source="/matching", subject=data.round_id)


def not_matched_parts(cohort: str, unmatched: list[ApplicationRef]) -> list[CloudEvent[Any]]:
    size = MAX_NOT_MATCHED_PER_EVENT
    chunks = [unmatched[i : i + size] for i in range(0, len(unmatched), size)]
    return [
        make_event(
            ApplicationsNotMatched(
                round_id=f"round-{cohort}",
                cohort_id=cohort,
                round_number=1,
                part=n,
                parts=len(chunks),
                applications=chunk,
                completed_at=AT,
            ),
            source="/matching",
            subject=cohort,
        )
        for n, chunk in enumerate(chunks, start=1)
    ]


async def assert_each_notice_once(store: NotificationsStore, cohort: str) -> None:
    notices = await store.messages.find(
        {"cohort_id": cohort, "template": "not_matched.student"},
        {"recipient_id": 1, "data": 1},
    ).to_list()
    per_student = Counter(m["recipient_id"] for m in notices)
    assert len(per_student) == UNMATCHED
    assert set(per_student.values()) == {1}
    # Each notice names its own application, and nobody else's.
    assert all(m["data"]["application_id"].endswith(m["recipient_id"][-5:]) for m in notices)


async def assert_bounded(store: NotificationsStore, cohort: str) -> None:
    assert 0 < store.largest_write <= FANOUT_CHUNK
    sizes = [len(bson.encode(m)) async for m in store.messages.find({"cohort_id": cohort})]
    assert max(sizes) <= MAX_MESSAGE_BYTES, max(sizes)


@pytest.fixture
async def rig(infra: Infra) -> AsyncIterator[tuple[NotificationsStore, Planner, Any]]:
    client = connect(infra.mongodb_uri)
    store = NotificationsStore(client[f"fanout_{time.monotonic_ns()}"])
    await store.ensure_indexes()
    planner = Planner(store, lambda: None, program_address=True)
    yield store, planner, client
    await client.close()


async def test_a_replayed_round_listing_thousands_is_planned_in_bounded_chunks(
    rig: tuple[NotificationsStore, Planner, Any],
) -> None:
    store, planner, client = rig
    event = round_completed("legacy", refs("legacy", UNMATCHED))

    async def consume(session: Any) -> int:
        return await planner.apply([event], "round-completed", session)

    # The consumer's transaction records the job, and no notice (the coordinator's summary
    # is in the job too: one fan-out, one order).
    assert await in_transaction(client, consume) == 0
    assert store.largest_write == 0
    job = await store.fanouts.find_one({"_id": f"fanout:{event.id}"})
    assert job is not None and job["total"] == UNMATCHED + 1 and not job["done"]

    started = time.perf_counter()
    chunks = await planner.plan_pending()
    elapsed = time.perf_counter() - started
    assert chunks == -(-(UNMATCHED + 1) // FANOUT_CHUNK)
    print(f"planning throughput (chunked job): {(UNMATCHED + 1) / elapsed:.0f} messages/s")
    await assert_each_notice_once(store, "legacy")
    await assert_bounded(store, "legacy")
    assert await store.messages.count_documents({"template": "round_completed.coordinator"}) == 1
    assert (await store.fanouts.find_one({"_id": f"fanout:{event.id}"}))["done"]


async def test_a_crash_midway_resumes_and_plans_each_notice_once(
    rig: tuple[NotificationsStore, Planner, Any],
) -> None:
    store, planner, client = rig
    event = round_completed("crash", refs("crash", UNMATCHED))
    await in_transaction(client, lambda s: planner.apply([event], "round-completed", s))
    assert await planner.plan_pending(max_chunks=2) == 2
    written = 2 * FANOUT_CHUNK
    assert await store.messages.count_documents({"cohort_id": "crash"}) == written

    # The third chunk's transaction dies after its writes, before its commit.
    class Crash(Exception):
        pass

    original = store._write_messages

    async def crashing(session: Any, docs: list[dict[str, Any]]) -> int:
        await original(session, docs)
        raise Crash

    store._write_messages = crashing  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await planner.plan_pending()
    assert await store.messages.count_documents({"cohort_id": "crash"}) == written

    # A restart (a new process), and the event delivered again (its offset was never
    # committed when it crashed): the job stays one, and every notice is planned once.
    restarted = NotificationsStore(store.db)
    again = Planner(restarted, lambda: None, program_address=True)
    await in_transaction(client, lambda s: again.apply([event], "round-completed", s))
    assert await restarted.fanouts.count_documents({}) == 1
    assert await again.plan_pending() == -(-(UNMATCHED + 1 - written) // FANOUT_CHUNK)
    await assert_each_notice_once(restarted, "crash")
    assert await again.plan_pending() == 0  # nothing left
    assert await restarted.messages.count_documents({"cohort_id": "crash"}) == UNMATCHED + 1


async def test_planning_round_trips_are_per_poll_not_per_event(
    rig: tuple[NotificationsStore, Planner, Any],
) -> None:
    """The parts of a round, as the consumer gets them (several per poll), plan in one
    bounded transaction each; the throughput is printed for the README's figures."""
    store, planner, client = rig
    parts = not_matched_parts("parts", refs("parts", UNMATCHED))
    assert len(parts) == UNMATCHED // MAX_NOT_MATCHED_PER_EVENT
    started = time.perf_counter()
    for part in parts:
        await in_transaction(
            client, lambda s, part=part: planner.apply([part], "applications-not-matched", s)
        )
    elapsed = time.perf_counter() - started
    print(f"planning throughput (event parts): {UNMATCHED / elapsed:.0f} messages/s")
    await assert_each_notice_once(store, "parts")
    await assert_bounded(store, "parts")
    assert await store.fanouts.count_documents({}) == 0  # each part fits one transaction


async def test_parts_on_kafka_plan_every_notice_and_a_failed_planning_is_shown(
    infra: Infra,
) -> None:
    settings = infra.settings(
        NotificationsSettings,
        database=f"fanout_kafka_{time.monotonic_ns()}",
        smtp_host="127.0.0.1",
        smtp_port=9,  # nothing is sent here: no contact arrives for these students
        delivery_poll_seconds=60,
        consumer_max_attempts=2,
        coordinator_email="coordinator@city.example",
    )
    topics = ["round-completed", "applications-not-matched"]
    await ensure_topics(
        infra.kafka_bootstrap, [settings.topic(t) for t in topics], partitions=2, replication=1
    )
    app = create_notifications(settings)
    store: NotificationsStore = app.state.store
    planner: Planner = app.state.planner
    original = planner.apply

    async def broken_for_one_cohort(events: list[Any], topic: str, session: Any) -> int:
        if any(e.data.cohort_id == "2026-broken" for e in events):
            raise RuntimeError("Transaction is too large (as the embedded MongoDB said)")
        return await original(events, topic, session)

    planner.apply = broken_for_one_cohort  # type: ignore[method-assign]
    events = [
        (topics[0], round_completed("kafka", [])),
        *((topics[1], part) for part in not_matched_parts("kafka", refs("kafka", UNMATCHED))),
        (topics[1], not_matched_parts("2026-broken", refs("2026-broken", 3))[0]),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    try:
        for topic, event in events:
            await producer.send_and_wait(
                settings.topic(topic), value=event.to_bytes(), key=event.data.key.encode()
            )
    finally:
        await producer.stop()

    coordinator = {"Authorization": f"Bearer {infra.token(Role.COORDINATOR, 'coord-fanout')}"}
    async with (
        TopicReader(infra.kafka_bootstrap, settings.topic(dlq_topic(topics[1]))) as dlq,
        running(app) as http,
    ):

        async def all_planned() -> bool:
            count = await store.messages.count_documents({"cohort_id": "kafka"})
            return count == UNMATCHED + 1  # and the coordinator's round summary

        await eventually(all_planned, timeout=240)
        await assert_each_notice_once(store, "kafka")
        await assert_bounded(store, "kafka")

        # The broken cohort's part went to the DLQ (what the DLQ alert counts) and the
        # coordinators see, in words, that its notices could not be planned.
        await dlq.wait_for(lambda rs: any(b"2026-broken" in r.value for r in rs))

        async def shown() -> list[dict[str, Any]]:
            r = await http.get("/deliveries/failures?cohort_id=2026-broken", headers=coordinator)
            assert r.status_code == 200
            return list(r.json())

        await eventually(shown, timeout=30)
        (entry,) = await shown()
        assert entry["template"] == NOT_PLANNED_TEMPLATE and entry["status"] == "failed"
        assert entry["last_error"].startswith(NOT_PLANNED)
        assert "Transaction is too large" in entry["last_error"]
        listed = await http.get("/deliveries?cohort_id=2026-broken", headers=coordinator)
        assert [m["id"] for m in listed.json()] == [entry["id"]]

        # Fixed, then retried: the notices are planned and the entry gives way to them.
        planner.apply = original  # type: ignore[method-assign]
        r = await http.post(f"/deliveries/{entry['id']}/retry", headers=coordinator)
        assert r.status_code == 200, r.text
        assert r.json()["created"] == 3
        after = await http.get("/deliveries?cohort_id=2026-broken", headers=coordinator)
        assert sorted(m["recipient_id"] for m in after.json()) == [
            f"stu-2026-broken-{n:05d}" for n in range(3)
        ]
        again = await http.post(f"/deliveries/{entry['id']}/retry", headers=coordinator)
        assert again.status_code == 404
