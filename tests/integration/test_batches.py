"""Batch consumption keeps every guarantee: a poll's events for one partition are applied in
one transaction, a poison message in the middle of a batch is split out (the others are
applied once, in order), and a batch-aware handler sees the events together."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.consumer import IdempotentConsumer
from shared.events import PositionClosed, make_event
from shared.kafka import IdempotentProducer, dlq_topic, ensure_topics
from shared.mongo import Session, connect
from shared.settings import CommonSettings
from tests.infra import Infra, TopicReader, eventually

pytestmark = pytest.mark.integration

KEY = b"one-key"  # one key: one partition, one batch, one order


def closed(position_id: str) -> PositionClosed:
    return PositionClosed(
        position_id=position_id,
        cohort_id="2026-summer",
        company_id="co-1",
        closed_at=datetime(2026, 7, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("batch_handler", [False, True], ids=["per-event", "batch-aware"])
async def test_a_poison_message_in_a_batch_is_split_out(infra: Infra, batch_handler: bool) -> None:
    settings: CommonSettings = infra.settings()
    topic = settings.topic("position-closed")
    await ensure_topics(settings.kafka_bootstrap_servers, [topic], partitions=2, replication=1)
    subjects = [f"pos-{i:02d}" for i in range(30)]
    poison = "pos-13"
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=50)
    await raw.start()
    try:  # all on the topic before the consumer starts: they come in one poll
        futures = [
            await raw.send(
                topic,
                key=KEY,
                value=make_event(closed(s), source="/tests", subject=s).to_bytes(),
            )
            for s in subjects
        ]
        for future in futures:
            await future
    finally:
        await raw.stop()

    client = connect(settings.mongodb_uri)
    db = client[f"batches_{int(batch_handler)}"]
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "batches")
    consumer = IdempotentConsumer(
        name="batches", client=client, db=db, producer=producer, settings=settings
    )
    calls: list[int] = []

    async def apply(event: Any, session: Session) -> None:
        if event.subject == poison:
            raise RuntimeError("this handler cannot cope")
        await db["effects"].update_one(
            {"_id": event.subject},
            {"$inc": {"count": 1}, "$push": {"order": event.subject}},
            upsert=True,
            session=session,
        )
        await db["log"].insert_one({"subject": event.subject}, session=session)

    async def apply_all(events: list[Any], session: Session) -> None:
        calls.append(len(events))
        for event in events:
            await apply(event, session)

    if batch_handler:
        consumer.subscribe_batch("position-closed", apply_all)
    else:
        consumer.subscribe("position-closed", apply)
    await producer.start()
    await consumer.start()
    try:
        async with TopicReader(settings.kafka_bootstrap_servers, dlq_topic(topic)) as dlq:
            records = await dlq.wait_for(lambda rs: len(rs) >= 1, timeout=60)

        async def all_applied() -> bool:
            return await db["effects"].count_documents({}) == len(subjects) - 1

        await eventually(all_applied, timeout=60)
    finally:
        await consumer.stop()
        await producer.stop()
    assert [r.key for r in records] == [KEY]
    headers = dict(records[0].headers)
    assert headers["dlq-attempts"] == str(settings.consumer_max_attempts).encode()
    assert b"cannot cope" in headers["dlq-error"]
    effects = {d["_id"]: d["count"] async for d in db["effects"].find()}
    assert effects == {s: 1 for s in subjects if s != poison}
    # The committed effects are in the order of the partition.
    order = [d["subject"] async for d in db["log"].find().sort("_id", 1)]
    assert order == [s for s in subjects if s != poison]
    assert await db["processed_events"].count_documents({}) == len(subjects) - 1
    if batch_handler:
        assert calls[0] > 1  # the handler saw the events together, not one by one
    await client.close()
