"""Kafka helpers: topic creation, the idempotent producer, and the DLQ naming."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


async def ensure_topics(
    bootstrap: str,
    topics: list[str],
    *,
    partitions: int,
    replication: int,
    compacted: frozenset[str] = frozenset(),
) -> None:
    """Create missing topics (and their DLQs); existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted: list[NewTopic] = []
        for topic in topics:
            for name in (topic, dlq_topic(topic)):
                if name in existing or any(t.name == name for t in wanted):
                    continue
                configs = {"cleanup.policy": "compact"} if name in compacted else {}
                # The contacts topic is keyed by party; one partition keeps it simple to compact.
                count = 1 if name in compacted else partitions
                wanted.append(NewTopic(name, count, replication, topic_configs=configs))
        if wanted:
            # Errors per topic (e.g. another service created it first) come back in the
            # response rather than raised; "already exists" is what we wanted anyway.
            response = await admin.create_topics(wanted)
            for topic, code, message in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise RuntimeError(f"could not create topic {topic}: {message}")
            log.info("topics created", extra={"topics": [t.name for t in wanted]})
    finally:
        await admin.close()


class IdempotentProducer:
    """An aiokafka producer with idempotence on, created when started (aiokafka needs the
    running event loop at construction)."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            enable_idempotence=True,  # implies acks=all; no duplicates from producer retries
            linger_ms=5,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue a record; await the returned future for the broker's acknowledgement."""
        return await self.producer.send(topic, **kwargs)

    async def send_and_wait(self, topic: str, **kwargs: Any) -> Any:
        return await self.producer.send_and_wait(topic, **kwargs)
