"""What operators and downstream consumers rely on, against the real servers: events readable
with the CloudEvents SDK's Kafka binding, topic configuration owned by the code (and
mismatches reported), and DLQ entries listed and redriven with `make dlq`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event
from cloudevents.core.formats.json import JSONFormat

from shared import dlq
from shared.consumer import IdempotentConsumer, RejectEvent
from shared.events import PositionClosed, make_event
from shared.kafka import IdempotentProducer, TopicPolicy, dlq_topic, ensure_topics
from shared.mongo import Session, connect, in_transaction
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings
from tests.infra import Infra, TopicReader, eventually

pytestmark = pytest.mark.integration


def closed(position_id: str) -> PositionClosed:
    return PositionClosed(
        position_id=position_id,
        cohort_id="2026-summer",
        company_id="co-1",
        closed_at=datetime(2026, 7, 1, tzinfo=UTC),
    )


async def test_the_cloudevents_sdk_reads_our_records_in_structured_mode(infra: Infra) -> None:
    settings: CommonSettings = infra.settings()
    topic = settings.topic("position-closed")
    await ensure_topics(settings.kafka_bootstrap_servers, [topic], partitions=2, replication=1)
    client = connect(settings.mongodb_uri)
    db = client["cloudevents_binding"]
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "binding")
    await producer.start()
    try:
        relay = OutboxRelay(db, producer, topic_name=settings.topic, poll_seconds=1, batch_size=10)
        outbox = Outbox(db, source="/services/applications")
        sent = await in_transaction(client, lambda s: outbox.add(s, closed("pos-ce")))
        assert await relay.publish_pending() == 1
        async with TopicReader(settings.kafka_bootstrap_servers, topic) as reader:
            (record,) = await reader.wait_for(lambda rs: any(r.key == b"pos-ce" for r in rs))
    finally:
        await producer.stop()
        await client.close()
    headers = dict(record.headers)
    assert headers["content-type"] == JSONFormat().get_content_type().encode()
    event = from_kafka_event(KafkaMessage(headers=headers, key=record.key, value=record.value))
    assert event.get_specversion() == "1.0"
    assert event.get_id() == str(sent.id)
    assert event.get_type() == "jp.kitakyushu.internship.position-closed.v1"
    assert event.get_source() == "/services/applications"
    assert event.get_subject() == "pos-ce"
    assert event.get_datacontenttype() == "application/json"
    data = event.get_data()
    assert isinstance(data, dict) and data["position_id"] == "pos-ce"


async def _configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = {}
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        for response in await admin.describe_configs(resources):
            for _code, _msg, _type, name, entries in response.resources:
                found[name] = {e[0]: e[1] for e in entries}
        return found
    finally:
        await admin.close()


async def test_topics_are_created_with_the_configuration_the_code_owns(infra: Infra) -> None:
    settings: CommonSettings = infra.settings()
    events, contacts = settings.topic("position-closed"), settings.topic("contacts")
    report = await ensure_topics(
        settings.kafka_bootstrap_servers,
        [events, contacts],
        partitions=2,
        replication=1,
        compacted=frozenset({contacts}),
    )
    assert set(report.created) == {events, contacts, dlq_topic(events), dlq_topic(contacts)}
    assert report.mismatches == []
    configs = await _configs(
        settings.kafka_bootstrap_servers, [events, contacts, dlq_topic(events)]
    )
    # Event topics and DLQs keep everything: replay from offset 0 works forever.
    assert configs[events]["retention.ms"] == "-1"
    assert configs[dlq_topic(events)]["retention.ms"] == "-1"
    # An erasure (tombstone) leaves the contacts log within a day.
    assert configs[contacts]["cleanup.policy"] == "compact"
    lag = int(configs[contacts]["max.compaction.lag.ms"])
    tombstone = int(configs[contacts]["delete.retention.ms"])
    assert lag + tombstone <= 24 * 3600 * 1000


async def test_a_topic_configured_otherwise_is_reported_at_start(infra: Infra) -> None:
    settings: CommonSettings = infra.settings()
    topic = settings.topic("position-closed")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:  # as a broker with default settings would have created it: deleted after 7 days
        await admin.create_topics(
            [NewTopic(topic, 2, 1, topic_configs={"retention.ms": "604800000"})]
        )
    finally:
        await admin.close()
    report = await ensure_topics(
        settings.kafka_bootstrap_servers,
        [topic],
        partitions=2,
        replication=1,
        policy=TopicPolicy(partitions=2),
    )
    assert report.mismatches == [
        f"{topic}: retention.ms=604800000 on the broker, the code wants -1"
    ]
    # Reported, not altered: changing a live topic is the operator's decision.
    assert (await _configs(settings.kafka_bootstrap_servers, [topic]))[topic][
        "retention.ms"
    ] == "604800000"


async def test_a_redriven_dlq_entry_is_applied_once(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: CommonSettings = infra.settings()
    topic = settings.topic("position-closed")
    await ensure_topics(settings.kafka_bootstrap_servers, [topic], partitions=2, replication=1)
    client = connect(settings.mongodb_uri)
    db = client["dlq_redrive"]
    producer = IdempotentProducer(settings.kafka_bootstrap_servers, "redrive")
    consumer = IdempotentConsumer(
        name="redrive", client=client, db=db, producer=producer, settings=settings
    )
    known: set[str] = set()

    async def apply(event: Any, session: Session) -> None:
        if event.data.company_id not in known:
            raise RejectEvent(f"company {event.data.company_id} unknown to this service")
        await db["effects"].update_one(
            {"_id": event.subject}, {"$inc": {"count": 1}}, upsert=True, session=session
        )

    consumer.subscribe("position-closed", apply)

    async def count() -> int:
        doc = await db["effects"].find_one({"_id": "pos-dlq"})
        return int(doc["count"]) if doc else 0

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", settings.kafka_topic_prefix)

    async def cli(*argv: str) -> str:
        out = io.StringIO()
        assert await dlq.main(list(argv), out=out) == 0
        return out.getvalue()

    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    await consumer.start()
    await raw.start()
    try:
        event = make_event(closed("pos-dlq"), source="/tests", subject="pos-dlq")
        await raw.send_and_wait(topic, key=b"pos-dlq", value=event.to_bytes())

        async def listed() -> str:
            text = await cli("list", "--topic", "position-closed")
            return text if "1 dead-lettered record(s)" in text else ""

        listing = await eventually(listed, timeout=30, interval=0.5)
        assert "reason: rejected: company co-1 unknown to this service" in listing
        assert "consumer=redrive attempts=1" in listing
        position = listing.split()[1]  # PARTITION:OFFSET of the entry in the DLQ
        assert await count() == 0

        known.add("co-1")  # the missing fact arrived: the entry can be applied now
        text = await cli("redrive", "--topic", "position-closed", "--offset", position)
        assert "1 record(s) redriven" in text
        await eventually(lambda: count(), timeout=30)
        # Redriven twice: the second copy is a duplicate, not a second effect.
        await cli("redrive", "--topic", "position-closed", "--all")
        await eventually(lambda: consumer.counts["duplicate"] >= 1, timeout=30)
        assert await count() == 1
        processed = await db["processed_events"].count_documents({"event_id": str(event.id)})
        assert processed == 1
    finally:
        await raw.stop()
        await consumer.stop()
        await producer.stop()
        await client.close()


def test_the_asyncapi_document_lists_consumed_topics_with_their_payloads() -> None:
    from services.notifications.app import NotificationsSettings, create_app

    app = create_app(NotificationsSettings(jwt_secret="x" * 40))  # type: ignore[arg-type]
    doc = app.state.runtime.asyncapi()
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert {"application-submitted", "match-proposed", "contacts"} <= addresses
    messages = doc["components"]["messages"]
    ref = messages["notifications:match-proposed:SubscribeMessage"]["payload"]["$ref"]
    assert unquote(ref) == "#/components/schemas/CloudEvent[MatchProposed]"
    schema = doc["components"]["schemas"]["CloudEvent[MatchProposed]"]
    assert "MatchProposed" in json.dumps(schema["properties"]["data"])
