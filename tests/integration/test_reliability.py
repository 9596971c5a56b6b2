"""Delivery guarantees against the real Kafka and MongoDB: the outbox never loses an event,
a redelivered event has one effect, and bad messages reach the DLQ with their reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from shared.consumer import IdempotentConsumer, RejectEvent
from shared.events import PositionClosed, make_event
from shared.kafka import IdempotentProducer, dlq_topic, ensure_topics
from shared.mongo import Session, connect, in_transaction
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings
from tests.infra import Infra, TopicReader, eventually

pytestmark = pytest.mark.integration


def closed_event(position_id: str) -> PositionClosed:
    return PositionClosed(
        position_id=position_id,
        cohort_id="2026-summer",
        company_id="co-1",
        closed_at=datetime(2026, 7, 1, tzinfo=UTC),
    )


class CrashingProducer(IdempotentProducer):
    """Stands in for a process that dies after the commit and before the publish."""

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[Any]:
        raise ConnectionError("process killed before publishing")


@pytest.fixture
async def settings(infra: Infra) -> CommonSettings:
    s: CommonSettings = infra.settings()
    await ensure_topics(
        s.kafka_bootstrap_servers,
        [s.topic("position-closed")],
        partitions=2,
        replication=1,
    )
    return s


async def test_outbox_republishes_after_a_crash_between_commit_and_publish(
    settings: CommonSettings,
) -> None:
    client = connect(settings.mongodb_uri)
    db = client["outbox_crash"]
    outbox = Outbox(db, source="/tests")
    await outbox.ensure_indexes()

    async def change_state(session: Session) -> str:
        await db["positions"].insert_one({"_id": "pos-crash", "state": "closed"}, session=session)
        event = await outbox.add(session, closed_event("pos-crash"))
        return str(event.id)

    event_id = await in_transaction(client, change_state)

    crashed = OutboxRelay(
        db,
        CrashingProducer(settings.kafka_bootstrap_servers, "crashed"),
        topic_name=settings.topic,
        poll_seconds=0.1,
        batch_size=10,
    )
    with pytest.raises(ConnectionError):
        await crashed.publish_pending()
    assert await db["outbox"].count_documents({"sent_at": None}) == 1

    # "Restart": a new relay with a working producer publishes what the crash left behind.
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "restarted")
    await producer.start()
    try:
        relay = OutboxRelay(
            db, producer, topic_name=settings.topic, poll_seconds=0.1, batch_size=10
        )
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0  # marked sent: not published again
    finally:
        await producer.stop()
    assert await db["outbox"].count_documents({"sent_at": None}) == 0

    async with TopicReader(
        settings.kafka_bootstrap_servers, settings.topic("position-closed")
    ) as r:
        records = await r.wait_for(lambda rs: any(x.key == b"pos-crash" for x in rs))
    published = [json.loads(x.value) for x in records if x.key == b"pos-crash"]
    assert [p["id"] for p in published] == [event_id]
    await client.close()


async def test_relay_loop_publishes_promptly_and_in_order(settings: CommonSettings) -> None:
    client = connect(settings.mongodb_uri)
    db = client["outbox_order"]
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "ordered")
    await producer.start()
    relay = OutboxRelay(db, producer, topic_name=settings.topic, poll_seconds=5, batch_size=7)
    outbox = Outbox(db, source="/tests", on_added=relay.wake)
    task = asyncio.create_task(relay.run())
    try:
        ids = []
        for _ in range(20):
            ids.append(
                await in_transaction(client, lambda s: outbox.add(s, closed_event("pos-ordered")))
            )
        async with TopicReader(
            settings.kafka_bootstrap_servers, settings.topic("position-closed")
        ) as r:
            await r.wait_for(lambda rs: sum(x.key == b"pos-ordered" for x in rs) >= 20, timeout=4)
            seen = [json.loads(x.value)["id"] for x in r.records if x.key == b"pos-ordered"]
        # One key = one partition: the order of the commits is the order on the topic.
        assert seen == [str(e.id) for e in ids]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await client.close()


class Harness:
    """One IdempotentConsumer on a real broker, whose handler counts its effects in MongoDB."""

    def __init__(self, settings: CommonSettings, name: str) -> None:
        self.settings = settings
        self.client = connect(settings.mongodb_uri)
        self.db = self.client[f"consumer_{name}"]
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers)
        self.producer = IdempotentProducer(settings.kafka_bootstrap_servers, name)
        self.consumer = IdempotentConsumer(
            name=name,
            broker=self.broker,
            client=self.client,
            db=self.db,
            producer=self.producer,
            settings=settings,
        )
        self.calls = 0

    async def effect(self, event: Any, session: Session) -> None:
        self.calls += 1
        if event.subject == "pos-poison":
            raise RuntimeError("this handler cannot cope")
        if event.subject == "pos-reject":
            raise RejectEvent("position unknown to this service")
        await self.db["effects"].update_one(
            {"_id": event.subject}, {"$inc": {"count": 1}}, upsert=True, session=session
        )

    async def count(self, subject: str) -> int:
        doc = await self.db["effects"].find_one({"_id": subject})
        return int(doc["count"]) if doc else 0


@pytest.fixture
async def harness(settings: CommonSettings) -> AsyncIterator[Harness]:
    h = Harness(settings, "reliability")
    h.consumer.subscribe("position-closed", h.effect)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.topic("position-closed")],
        partitions=2,
        replication=1,
    )
    await h.consumer.ensure_indexes()
    await h.producer.start()
    await h.broker.start()
    yield h
    await h.broker.stop()
    await h.producer.stop()
    await h.client.close()


async def raw_send(settings: CommonSettings, key: bytes, value: bytes, times: int = 1) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for _ in range(times):
            await producer.send_and_wait(settings.topic("position-closed"), value=value, key=key)
    finally:
        await producer.stop()


async def test_an_event_delivered_twice_has_one_effect(harness: Harness) -> None:
    event = make_event(closed_event("pos-dup"), source="/tests", subject="pos-dup")
    other = make_event(closed_event("pos-after"), source="/tests", subject="pos-after")
    await raw_send(harness.settings, b"pos-dup", event.to_bytes(), times=3)
    await raw_send(harness.settings, b"pos-after", other.to_bytes())
    await eventually(lambda: harness.count("pos-after"))
    assert await harness.count("pos-dup") == 1
    assert harness.consumer.counts["duplicate"] >= 2
    processed = await harness.db["processed_events"].count_documents({"event_id": str(event.id)})
    assert processed == 1


async def test_invalid_messages_go_to_the_dlq_with_reason(harness: Harness) -> None:
    settings = harness.settings
    async with TopicReader(
        settings.kafka_bootstrap_servers, settings.topic(dlq_topic("position-closed"))
    ) as dlq:
        await raw_send(settings, b"bad-json", b"{not json")
        wrong = make_event(closed_event("pos-x"), source="/tests", subject="pos-x")
        body = json.loads(wrong.to_bytes())
        body["data"]["closed_at"] = "yesterday-ish"
        await raw_send(settings, b"bad-field", json.dumps(body).encode())
        records = await dlq.wait_for(lambda rs: {r.key for r in rs} >= {b"bad-json", b"bad-field"})
    by_key = {r.key: dict(r.headers) for r in records}
    assert by_key[b"bad-json"]["dlq-consumer"] == b"reliability"
    assert by_key[b"bad-json"]["dlq-attempts"] == b"1"
    assert by_key[b"bad-json"]["dlq-error"].startswith(b"invalid event:")
    assert b"closed_at" in by_key[b"bad-field"]["dlq-error"]
    assert by_key[b"bad-field"]["dlq-original-topic"] == settings.topic("position-closed").encode()
    # The stream goes on after them.
    ok = make_event(closed_event("pos-ok"), source="/tests", subject="pos-ok")
    await raw_send(settings, b"pos-ok", ok.to_bytes())
    await eventually(lambda: harness.count("pos-ok"))


async def test_a_failing_handler_is_retried_then_dead_lettered(harness: Harness) -> None:
    settings = harness.settings
    poison = make_event(closed_event("pos-poison"), source="/tests", subject="pos-poison")
    reject = make_event(closed_event("pos-reject"), source="/tests", subject="pos-reject")
    async with TopicReader(
        settings.kafka_bootstrap_servers, settings.topic(dlq_topic("position-closed"))
    ) as dlq:
        await raw_send(settings, b"pos-poison", poison.to_bytes())
        await raw_send(settings, b"pos-reject", reject.to_bytes())
        records = await dlq.wait_for(
            lambda rs: {r.key for r in rs} >= {b"pos-poison", b"pos-reject"}
        )
    headers = {r.key: dict(r.headers) for r in records}
    attempts = settings.consumer_max_attempts
    assert headers[b"pos-poison"]["dlq-attempts"] == str(attempts).encode()
    assert b"cannot cope" in headers[b"pos-poison"]["dlq-error"]
    assert headers[b"pos-reject"]["dlq-attempts"] == b"1"  # a rejection is not retried
    assert headers[b"pos-reject"]["dlq-error"] == b"rejected: position unknown to this service"
    # A failed attempt left nothing behind: not even the processed-event marker.
    assert await harness.db["processed_events"].count_documents({"event_id": str(poison.id)}) == 0
    assert await harness.count("pos-poison") == 0


async def test_contacts_bad_and_failing_records_reach_the_dlq(settings: CommonSettings) -> None:
    h = Harness(settings, "contacts-reliability")
    seen: list[tuple[str, bool]] = []

    async def keep(items: list[tuple[str, Any]], session: Session) -> None:
        if any(party_id == "party-poison" for party_id, _ in items):
            raise RuntimeError("cannot store this contact")
        seen.extend((party_id, record is None) for party_id, record in items)

    h.consumer.subscribe_contacts_batch(keep)
    topic = settings.topic("contacts")
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [topic],
        partitions=1,
        replication=1,
        compacted=frozenset({topic}),
    )
    await h.producer.start()
    await h.broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    good = {"party_id": "stu-p", "party_type": "student", "name": "N", "email": "n@example.tw"}
    try:
        async with TopicReader(settings.kafka_bootstrap_servers, dlq_topic(topic)) as dlq:
            await producer.send_and_wait(topic, key=b"party-bad", value=b'{"email": "x"}')
            await producer.send_and_wait(
                topic, key=b"party-poison", value=json.dumps(good).encode()
            )
            await producer.send_and_wait(topic, key=b"party-ok", value=json.dumps(good).encode())
            await producer.send_and_wait(topic, key=b"party-gone", value=None)  # tombstone
            records = await dlq.wait_for(
                lambda rs: {r.key for r in rs} >= {b"party-bad", b"party-poison"}
            )
        headers = {r.key: dict(r.headers) for r in records}
        assert headers[b"party-bad"]["dlq-error"].startswith(b"invalid contact:")
        assert (
            headers[b"party-poison"]["dlq-attempts"] == str(settings.consumer_max_attempts).encode()
        )
        await eventually(lambda: ("party-gone", True) in seen)
        assert ("party-ok", False) in seen
    finally:
        await producer.stop()
        await h.broker.stop()
        await h.producer.stop()
        await h.client.close()


async def test_one_relay_publishes_at_a_time_and_hands_over(settings: CommonSettings) -> None:
    client = connect(settings.mongodb_uri)
    db = client["outbox_lease"]
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "lease")
    await producer.start()
    first, second = (
        OutboxRelay(
            db,
            producer,
            topic_name=settings.topic,
            poll_seconds=0.1,
            batch_size=10,
            lease_seconds=30,
        )
        for _ in range(2)
    )
    try:
        assert await first.hold_lease()
        assert not await second.hold_lease()  # stands by while the first holds it
        assert await first.hold_lease()  # renewing is fine
        await first.release_lease()
        assert await second.hold_lease()  # handed over without waiting for the expiry
        assert not await first.hold_lease()
        # A holder that stalls past its lease loses it.
        second.lease_seconds = 0.2
        assert await second.hold_lease()
        await asyncio.sleep(0.3)
        assert await first.hold_lease()
    finally:
        await producer.stop()
        await client.close()
