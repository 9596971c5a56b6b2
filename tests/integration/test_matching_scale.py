"""Matching at scale, against the real embedded Kafka and MongoDB:

- one writer per document: `application-submitted` (keyed by application) and
  `student-profile-updated` (keyed by student) hammering the same students from concurrent
  partitions never conflict, never pause as an outage, dead-letter nothing, and every fact
  lands (the application's copy in its document, the newest profile in the student's);
- a transaction that does lose a write race is run again at once and counted, not paused,
  and one that loses for longer than MONGO_TRANSACTION_SECONDS is run again by the consumer,
  still no outage and no dead letter;
- a round's input and lists are stored in bounded chunks, read back, and replay identically.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from pymongo.errors import OperationFailure

from services.matching import handlers
from services.matching import store as store_module
from services.matching.domain.rules import RoundInput
from services.matching.store import (
    PART_MAX_BYTES,
    ROUND_LIST_PARTS,
    MatchingStore,
    pair_docs,
    replay,
)
from shared import mongo
from shared.consumer import IdempotentConsumer
from shared.events import ApplicationSubmitted, StudentProfileUpdated, make_event
from shared.events.catalog import CATALOG, MAX_NOT_MATCHED_PER_EVENT
from shared.events.vocabulary import JLPTLevel
from shared.kafka import IdempotentProducer, ensure_topics
from shared.mongo import Session, connect, in_transaction
from shared.outbox import Outbox
from shared.settings import CommonSettings
from tests.infra import Infra, eventually

pytestmark = pytest.mark.integration

TRANSIENT = "TransientTransactionError"
DEPARTMENTS = ("Electrical Engineering", "Computer Science", "Mechanical Engineering")


class Routes:
    """Hands the handlers `register` declares to a bare consumer (no service runtime)."""

    def __init__(self, consumer: IdempotentConsumer) -> None:
        self.consumer = consumer

    def consumes(self, topic: str, handler: Any) -> None:
        self.consumer.subscribe(topic, handler)

    def consumes_batch(self, topic: str, handler: Any) -> None:
        self.consumer.subscribe_batch(topic, handler)


def sample(metrics: Any, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"service": metrics.service, **labels})
    return float(value or 0.0)


async def test_both_handlers_hammering_the_same_students_never_conflict_nor_pause(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    settings: CommonSettings = infra.settings(kafka_topic_partitions=3, consumer_batch_size=40)
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(20)
    students = [f"stu-{tag}-{i:02d}" for i in range(24)]
    base = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    submitted: dict[str, ApplicationSubmitted] = {}  # each application's last submission
    profiles: dict[str, StudentProfileUpdated] = {}  # each student's last update
    events: list[ApplicationSubmitted | StudentProfileUpdated] = []
    for step in range(6):
        for s, student in enumerate(students):
            at = base + timedelta(minutes=step, seconds=s)
            for cohort in ("2027", "2028"):
                data = ApplicationSubmitted(
                    application_id=f"app-{student}-{cohort}",
                    cohort_id=cohort,
                    student_id=student,
                    ranked_position_ids=[f"pos-{cohort}-{rng.randrange(9)}" for _ in range(3)],
                    department=rng.choice(DEPARTMENTS),
                    degree_program="bachelor",
                    graduation_year=2028,
                    skills=[f"skill-{step}"],
                    available_from=date(2027, 6, 1),
                    available_to=date(2027, 9, 30),
                    consent_to_data_use=True,
                    submitted_at=at,
                )
                submitted[data.application_id] = data
                events.append(data)
            update = StudentProfileUpdated(
                student_id=student,
                department=rng.choice(DEPARTMENTS),
                degree_program="master",
                graduation_year=2029,
                jlpt_level=rng.choice([JLPTLevel.N1, JLPTLevel.N2, JLPTLevel.N3]),
                skills=[f"profile-{step}"],
                available_from=date(2027, 5, 1),
                available_to=date(2027, 10, 31),
                consent_to_data_use=True,
                updated_at=at + timedelta(seconds=30),
            )
            profiles[student] = update
            events.append(update)

    topics = [settings.topic(name) for name in CATALOG]
    await ensure_topics(settings.kafka_bootstrap_servers, topics, partitions=3, replication=1)
    client = connect(settings.mongodb_uri)
    db = client[f"mscale_{tag}"]
    store = MatchingStore(db, Outbox(db, source="/tests"))
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "mscale")
    consumer = IdempotentConsumer(
        name="matching", client=client, db=db, producer=producer, settings=settings
    )
    handlers.register(cast(Any, Routes(consumer)), store)
    # As the service does at its start: collections created up front (two transactions
    # creating one implicitly conflict).
    await store.ensure_indexes()
    await consumer.ensure_indexes()
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20)
    await raw.start()
    await producer.start()
    caplog.set_level(logging.WARNING, logger="dependencies")
    try:
        await consumer.start()
        # Sent while the consumer runs: polls of both topics interleave on every student.
        for fact in events:
            await raw.send(
                settings.topic(fact.event_name),
                key=fact.key.encode(),
                value=make_event(fact, source="/tests", subject=fact.key).to_bytes(),
            )
        await raw.flush()

        async def all_applied() -> bool:
            return await db["processed_events"].count_documents({}) == len(events)

        await eventually(all_applied, timeout=180, interval=0.5)
    finally:
        await consumer.stop()
        await producer.stop()
        await raw.stop()
    try:
        # Every fact applied: each application holds its last submission, each student's
        # document the newest profile update, and nothing else wrote there.
        for application_id, data in submitted.items():
            doc = await store.applications.find_one({"_id": application_id})
            assert doc is not None
            expected = data.model_dump(mode="json", exclude={"application_id"})
            assert {k: doc[k] for k in expected} == expected
            assert doc["state"] == "active"
        for student, update in profiles.items():
            doc = await store.students.find_one({"_id": student})
            assert doc is not None
            assert doc["as_of"] == update.updated_at
            assert doc["skills"] == update.skills and doc["department"] == update.department
        assert await store.students.count_documents({}) == len(students)
        # No pause, no outage, no dead letter, and no write race between the two handlers.
        metrics = consumer.metrics
        assert (
            sample(metrics, "kitakyushu_consumer_outage_retries_total", dependency="mongodb") == 0
        )
        assert consumer.counts["dead-lettered"] == 0
        assert sample(metrics, "kitakyushu_mongodb_transaction_conflicts_total") == 0
        assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
        # The round sees the newer source of each student's facts: here the profile.
        facts = await store.cohort_facts(cast(Session, None), "2027")
        assert len(facts.applications) == len(students)
        assert set(facts.profiles) == set(students)
    finally:
        await client.drop_database(f"mscale_{tag}")
        await client.close()


async def test_a_transaction_that_loses_a_write_race_is_run_again_and_counted(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(infra.mongodb_uri)
    db = client[f"mrace_{uuid.uuid4().hex[:8]}"]
    conflicts: list[int] = []
    mongo.configure_transactions(client, seconds=10, on_conflict=lambda: conflicts.append(1))
    await db["counters"].insert_one({"_id": "one", "n": 0, "by": []})
    holding = asyncio.Event()
    attempts = {"first": 0, "second": 0}

    async def first(session: Session) -> None:
        attempts["first"] += 1
        await db["counters"].update_one(
            {"_id": "one"}, {"$inc": {"n": 1}, "$push": {"by": "first"}}, session=session
        )
        holding.set()
        await asyncio.sleep(0.5)  # holds its write while the second one tries

    async def second(session: Session) -> None:
        attempts["second"] += 1
        await db["counters"].update_one(
            {"_id": "one"}, {"$inc": {"n": 1}, "$push": {"by": "second"}}, session=session
        )

    caplog.set_level(logging.WARNING, logger="dependencies")
    try:
        task = asyncio.create_task(in_transaction(client, first))
        await holding.wait()
        await in_transaction(client, second)
        await task
        doc = await db["counters"].find_one({"_id": "one"})
        assert doc is not None and doc["n"] == 2 and sorted(doc["by"]) == ["first", "second"]
        assert attempts["second"] > 1 and len(conflicts) >= 1  # it lost, and was run again
        assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest.fixture
async def round_store(infra: Infra) -> AsyncIterator[MatchingStore]:
    client = connect(infra.mongodb_uri)
    db = client[f"mround_{uuid.uuid4().hex[:8]}"]
    store = MatchingStore(db, Outbox(db, source="/tests"))
    await store.ensure_indexes()
    try:
        yield store
    finally:
        await client.drop_database(db.name)
        await client.close()


async def seed_cohort(store: MatchingStore, cohort: str, n: int) -> None:
    rng = random.Random(n)
    await store.cohorts.insert_one({"_id": cohort, "state": "closed", "changed_at": "x"})
    positions = [
        {
            "_id": f"pos-{i:04d}",
            "cohort_id": cohort,
            "company_id": f"com-{i % 7}",
            "sector": rng.choice(["semiconductor", "automotive", "robotics_ai"]),
            "capacity": rng.randint(1, 6),
            "required_skills": ["python"] if i % 3 == 0 else [],
            "min_jlpt": "N3" if i % 4 == 0 else None,
            "paid": i % 5 != 0,
            "start_date": "2027-07-01",
            "end_date": "2027-08-31",
            "state": "open",
        }
        for i in range(n // 6)
    ]
    await store.positions.insert_many(positions)
    at = datetime(2027, 3, 1, tzinfo=UTC)
    applications, profiles = [], []
    for s in range(n):
        facts = {
            "department": rng.choice(DEPARTMENTS),
            "degree_program": "bachelor",
            "graduation_year": 2028,
            "jlpt_level": rng.choice(["N1", "N2", "N3", "N4"]),
            "english_level": "B2",
            "skills": rng.sample(["python", "cad", "plc", "sql"], 2),
            "available_from": "2027-06-01",
            "available_to": "2027-09-30",
            "consent_to_data_use": True,
        }
        applications.append(
            {
                "_id": f"app-{s:05d}",
                "cohort_id": cohort,
                "student_id": f"stu-{s:05d}",
                "ranked_position_ids": [p["_id"] for p in rng.sample(positions, 5)],
                "submitted_at": (at + timedelta(seconds=s)).isoformat(),
                "state": "active",
                **facts,
            }
        )
        if s % 2:  # half of them changed their profile afterwards
            later = {**facts, "jlpt_level": "N1", "skills": ["python", "plc"]}
            profiles.append({"_id": f"stu-{s:05d}", **later, "as_of": at + timedelta(days=2)})
    await store.applications.insert_many(applications)
    await store.students.insert_many(profiles)


async def test_a_round_is_stored_in_bounded_chunks_and_replays_identically(
    round_store: MatchingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = round_store
    monkeypatch.setattr(store_module, "PART_MAX_ITEMS", 40)
    await seed_cohort(store, "2027", 300)
    client = store.db.client

    async def preview(session: Session) -> RoundInput:
        return await store.round_input(session, "2027", 11)

    previewed = await in_transaction(client, preview)
    round_doc = await in_transaction(
        client, lambda s: store.start_round(s, "2027", 11, timedelta(days=14))
    )
    round_id = round_doc["_id"]
    assert round_doc["pairs"] and round_doc["unmatched_student_ids"]
    assert round_doc["input_hash"] == previewed.snapshot_hash()  # one read, the same market

    # The round document is a summary; its input and lists are chunks of at most 40 items.
    stored = await store.rounds.find_one({"_id": round_id})
    assert stored is not None
    assert not {"input", *ROUND_LIST_PARTS} & set(stored)
    chunks = await store.round_parts.find({"round_id": round_id}).to_list()
    assert {c["part"] for c in chunks} >= {"students", "positions", "pairs", "proposal_ids"}
    assert all(len(c["items"]) <= 40 for c in chunks)
    per_part = {p: sum(1 for c in chunks if c["part"] == p) for p in stored["parts"]}
    assert per_part == {p: n for p, n in stored["parts"].items()}
    assert per_part["students"] >= 300 // 40
    for chunk in chunks:
        assert len(store_module.bson.encode(chunk)) <= PART_MAX_BYTES + 16 * 1024

    # Read back whole and in order: the same input, the same result.
    full = await store.get_round(round_id, ("input", *ROUND_LIST_PARTS))
    assert full["input"] == round_doc["input"]
    for name in ROUND_LIST_PARTS:
        assert full[name] == round_doc[name]
    replayed_input, result = replay(full)
    assert replayed_input.snapshot_hash() == stored["input_hash"]
    assert pair_docs(result) == full["pairs"]
    assert list(result.unmatched_student_ids) == full["unmatched_student_ids"]

    # Proposals and their events were written in bulk, in the round's transaction.
    assert await store.proposals.count_documents({"round_id": round_id}) == len(full["pairs"])
    topics = [e["topic"] for e in await store.outbox.collection.find().sort("_id").to_list()]
    # The applications left without a proposal follow in bounded parts (issue 20).
    parts = math.ceil(len(full["unmatched_student_ids"]) / MAX_NOT_MATCHED_PER_EVENT)
    assert parts >= 1
    assert topics == (
        ["match-proposed"] * len(full["pairs"])
        + ["round-completed"]
        + ["applications-not-matched"] * parts
    )

    # A chunk gone missing is an error, never a shorter list taken for the whole.
    await store.round_parts.delete_one({"round_id": round_id, "part": "pairs", "seq": 1})
    with pytest.raises(RuntimeError, match="incomplete"):
        await store.get_round(round_id, ("pairs",))


def test_chunks_are_bounded_by_items_and_bytes() -> None:
    items = [{"id": i, "blob": "x" * (50 if i % 10 else 5000)} for i in range(1000)]
    chunks = store_module.bounded_chunks(items, 64, 20_000)
    assert [i for chunk in chunks for i in chunk] == items
    for chunk in chunks:
        assert len(chunk) <= 64
        assert len(store_module.bson.encode({"items": chunk})) <= 20_000 + 100
    assert store_module.bounded_chunks([], 10, 100) == []
    huge = [{"blob": "y" * 500}, {"blob": "z"}]
    assert store_module.bounded_chunks(huge, 10, 100) == [[huge[0]], [huge[1]]]


async def test_conflicts_past_the_bound_are_retried_by_the_consumer_not_paused(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler whose transaction loses every race for longer than the transaction bound
    (0.3 s here): the consumer runs the batch again soon, with no outage retry, no
    "unreachable" line and no dead letter, and it is applied once when the race is over."""
    settings: CommonSettings = infra.settings(mongo_transaction_seconds=0.3)
    topic = settings.topic(StudentProfileUpdated.event_name)
    await ensure_topics(settings.kafka_bootstrap_servers, [topic], partitions=1, replication=1)
    client = connect(settings.mongodb_uri)
    db = client[f"mbound_{uuid.uuid4().hex[:8]}"]
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "mbound")
    consumer = IdempotentConsumer(
        name="mbound", client=client, db=db, producer=producer, settings=settings
    )
    await consumer.ensure_indexes()
    await db.create_collection("effects")
    losing_until = asyncio.get_running_loop().time() + 1.5
    calls: list[float] = []

    async def apply(event: Any, session: Session) -> None:
        now = asyncio.get_running_loop().time()
        calls.append(now)
        if now < losing_until:  # as the server answers a statement that lost a race
            raise OperationFailure(
                "WriteConflict error: this operation conflicted with another operation.",
                112,
                {"code": 112, "codeName": "WriteConflict", "errorLabels": [TRANSIENT]},
            )
        await db["effects"].update_one(
            {"_id": event.subject}, {"$inc": {"n": 1}}, upsert=True, session=session
        )

    consumer.subscribe(StudentProfileUpdated.event_name, apply)
    update = StudentProfileUpdated(
        student_id="stu-race",
        department="Computer Science",
        degree_program="master",
        graduation_year=2029,
        available_from=date(2027, 5, 1),
        available_to=date(2027, 10, 31),
        consent_to_data_use=True,
        updated_at=datetime(2027, 3, 1, tzinfo=UTC),
    )
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await raw.start()
    caplog.set_level(logging.WARNING, logger="dependencies")
    await producer.start()
    await consumer.start()
    try:
        await raw.send_and_wait(
            topic,
            key=b"stu-race",
            value=make_event(update, source="/tests", subject="stu-race").to_bytes(),
        )

        async def applied() -> bool:
            return await db["effects"].find_one({"_id": "stu-race"}) is not None

        await eventually(applied, timeout=60)
    finally:
        await consumer.stop()
        await producer.stop()
        await raw.stop()
    try:
        assert await db["effects"].find_one({"_id": "stu-race"}) == {"_id": "stu-race", "n": 1}
        metrics = consumer.metrics
        conflicts = sample(metrics, "kitakyushu_mongodb_transaction_conflicts_total")
        assert conflicts == len(calls) - 1 and conflicts >= 3  # every lost race counted
        outages = sample(metrics, "kitakyushu_consumer_outage_retries_total", dependency="mongodb")
        assert outages == 0
        assert consumer.counts["dead-lettered"] == 0 and consumer.counts["applied"] == 1
        assert (
            sample(
                metrics,
                "kitakyushu_consumer_events_total",
                outcome="retried",
                topic=StudentProfileUpdated.event_name,
            )
            == 0
        )
        assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
    finally:
        await client.drop_database(db.name)
        await client.close()
