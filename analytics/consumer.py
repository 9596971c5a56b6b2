"""Lands the public topics in DuckDB: its own consumer group, from the beginning, each batch in
one DuckDB transaction before its offsets are committed (a crash in between lands the batch
again, and the event ids make the repeat a no-op).

The consumer is assigned every partition of the public topics instead of joining the group's
rebalancing: an embedded DuckDB file has one writer, so one process owns all partitions, and a
process that dies never leaves a stale member behind for the next start to wait on. The group
still keeps the committed offsets, so a restart goes on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from analytics.landing import Landed, Landing, Message
from analytics.settings import AnalyticsSettings
from shared.connections import kafka_client_options
from shared.events import CATALOG

log = logging.getLogger(__name__)

# Every public event type has its own topic; `contacts` (restricted) and the `.dlq` topics are
# not for analysts.
PUBLIC_TOPICS = tuple(sorted(CATALOG))


@dataclass
class Progress:
    events: int = 0
    rejected: int = 0
    batches: int = 0
    missing_topics: tuple[str, ...] = ()


def _consumer(settings: AnalyticsSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="analytics",
        group_id=settings.group(settings.group_name),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_client_options(settings),
    )


async def _partitions(
    consumer: AIOKafkaConsumer, settings: AnalyticsSettings
) -> tuple[list[TopicPartition], tuple[str, ...]]:
    existing = await consumer.topics()
    partitions: list[TopicPartition] = []
    missing = []
    for name in PUBLIC_TOPICS:
        topic = settings.topic(name)
        found = consumer.partitions_for_topic(topic) if topic in existing else None
        if not found:
            missing.append(name)
            continue
        partitions.extend(TopicPartition(topic, p) for p in sorted(found))
    return partitions, tuple(missing)


async def land(
    settings: AnalyticsSettings,
    landing: Landing,
    *,
    follow: bool = False,
    on_batch: Callable[[Progress, Landed], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Progress:
    """Land what the public topics hold. Without `follow`, return once every partition is
    read up to where it ended when this call began (caught up); with it, keep landing (new
    topics are picked up every minute) until `stop` is set."""
    consumer = _consumer(settings)
    await consumer.start()
    progress = Progress()
    try:
        partitions, progress.missing_topics = await _partitions(consumer, settings)
        if progress.missing_topics:
            log.info("topics not created yet", extra={"topics": progress.missing_topics})
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions) if partitions else {}
        prefix = len(settings.kafka_topic_prefix)
        rescan_at = time.monotonic() + 60
        while not (stop is not None and stop.is_set()):
            batch = await consumer.getmany(
                timeout_ms=settings.poll_timeout_ms, max_records=settings.batch_size
            )
            messages = [
                Message(r.topic[prefix:], r.partition, r.offset, r.value)
                for records in batch.values()
                for r in records
            ]
            if messages:
                landed = landing.land(messages)
                await consumer.commit()
                progress.events += landed.events
                progress.rejected += landed.rejected
                progress.batches += 1
                if on_batch is not None:
                    on_batch(progress, landed)
            if not follow:
                positions = [await consumer.position(tp) for tp in partitions]
                if all(p >= ends[tp] for p, tp in zip(positions, partitions, strict=True)):
                    return progress
            elif time.monotonic() >= rescan_at and progress.missing_topics:
                rescan_at = time.monotonic() + 60
                partitions, progress.missing_topics = await _partitions(consumer, settings)
                consumer.assign(partitions)
        return progress
    finally:
        await consumer.stop()
