"""Idempotent Kafka consumers: at-least-once delivery made effectively-once.

Each message is handled inside one MongoDB transaction that also records its event id in
`processed_events`; a redelivered event finds its id there and has no second effect.
Offsets are committed only after the handler finished (FastStream's NACK_ON_ERROR policy:
commit on success, seek back on an unexpected error), never before, as the default would.
Invalid messages and messages that keep failing go to `<topic>.dlq` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent, parse_event
from shared.kafka import IdempotentProducer, dlq_topic
from shared.mongo import Session, in_transaction
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

PROCESSED = "processed_events"

EventHandler = Callable[[CloudEvent[Any], Session], Awaitable[None]]
ContactHandler = Callable[[str, ContactRecord | None, Session], Awaitable[None]]


class RejectEvent(Exception):
    """The event can never be applied (e.g. it contradicts this service's state): dead-letter
    it at once instead of retrying."""


class IdempotentConsumer:
    """Subscribes handlers to topics for one consumer group (one per service)."""

    def __init__(
        self,
        *,
        name: str,
        broker: KafkaBroker,
        client: AsyncMongoClient[dict[str, Any]],
        db: AsyncDatabase[dict[str, Any]],
        producer: IdempotentProducer,
        settings: CommonSettings,
    ) -> None:
        self.name = name
        self.broker = broker
        self.client = client
        self.processed = db[PROCESSED]
        self.producer = producer
        self.settings = settings
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "dead-lettered": 0}

    async def ensure_indexes(self) -> None:
        # _id is (consumer, event id): unique by construction.
        await self.processed.create_index("processed_at")

    def subscribe(self, topic: str, handler: EventHandler) -> None:
        async def on_message(msg: KafkaMessage) -> None:
            await self.handle_record(topic, msg.raw_message, handler)

        self._register(topic, on_message, f"{self.name} applies {topic}")

    def subscribe_contacts(self, handler: ContactHandler) -> None:
        async def on_message(msg: KafkaMessage) -> None:
            await self.handle_contact(msg.raw_message, handler)

        self._register(CONTACTS_TOPIC, on_message, f"{self.name} keeps its private contacts copy")

    def _register(self, topic: str, func: Callable[..., Awaitable[None]], description: str) -> None:
        func.__name__ = f"{self.name}_{topic}".replace("-", "_")
        self.broker.subscriber(
            self.settings.topic(topic),
            # One group per (service, topic): a group whose members subscribe to different
            # topics rebalances all of them whenever one joins, which stalls start-up.
            group_id=self.settings.group(f"{self.name}.{topic}"),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{self.name}:{topic}",
            description=description,
        )(func)

    async def handle_record(
        self, topic: str, record: ConsumerRecord[Any, Any], handler: EventHandler
    ) -> str:
        started = time.perf_counter()
        try:
            event = parse_event(record.value, expected=topic)
        except Exception as exc:  # invalid JSON, envelope or payload: retrying cannot help
            await self.dead_letter(topic, record, f"invalid event: {exc}", attempts=1)
            return self._log(topic, {}, "dead-lettered", 1, started, reason=str(exc)[:500])
        about = {"event_id": str(event.id), "event_type": event.type, "subject": event.subject}
        return await self._with_retries(
            topic, record, about, started, lambda: self._apply_once(event, handler)
        )

    async def handle_contact(
        self, record: ConsumerRecord[Any, Any], handler: ContactHandler
    ) -> str:
        started = time.perf_counter()
        party_id = record.key.decode() if record.key else ""
        try:
            if not party_id:
                raise ValueError("contact message without a key")
            contact = (
                None if record.value is None else ContactRecord.model_validate_json(record.value)
            )
        except Exception as exc:
            await self.dead_letter(CONTACTS_TOPIC, record, f"invalid contact: {exc}", attempts=1)
            return self._log(CONTACTS_TOPIC, {}, "dead-lettered", 1, started, reason=str(exc)[:500])

        # Upserts and erasures are idempotent by nature (last write wins), so no event id.
        async def apply() -> str:
            await in_transaction(self.client, lambda s: handler(party_id, contact, s))
            return "applied"

        about = {"party_id": party_id, "erased": contact is None}
        return await self._with_retries(CONTACTS_TOPIC, record, about, started, apply)

    async def _with_retries(
        self,
        topic: str,
        record: ConsumerRecord[Any, Any],
        about: dict[str, Any],
        started: float,
        apply: Callable[[], Awaitable[str]],
    ) -> str:
        """Apply with bounded retries and backoff; a rejection or the last failure goes to
        the DLQ. Returns the outcome."""
        attempts = self.settings.consumer_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return self._log(topic, about, await apply(), attempt, started)
            except RejectEvent as exc:
                await self.dead_letter(topic, record, f"rejected: {exc}", attempts=attempt)
                return self._log(topic, about, "dead-lettered", attempt, started, reason=str(exc))
            except Exception as exc:
                if attempt == attempts:
                    reason = f"failed after {attempt} attempts: {exc!r}"
                    await self.dead_letter(topic, record, reason, attempts=attempt)
                    log.exception("handler failed; dead-lettered", extra=about)
                    return self._log(topic, about, "dead-lettered", attempt, started, reason=reason)
                log.warning(
                    "handler failed; retrying",
                    extra={**about, "attempt": attempt, "error": repr(exc)},
                )
                await asyncio.sleep(
                    self.settings.consumer_retry_backoff_seconds * 2 ** (attempt - 1)
                )
        raise AssertionError("unreachable")

    async def _apply_once(self, event: CloudEvent[Any], handler: EventHandler) -> str:
        key = f"{self.name}:{event.id}"

        async def work(session: Session) -> str:
            if await self.processed.find_one({"_id": key}, session=session) is not None:
                return "duplicate"
            await self.processed.insert_one(
                {
                    "_id": key,
                    "consumer": self.name,
                    "event_id": str(event.id),
                    "type": event.type,
                    "processed_at": datetime.now(UTC),
                },
                session=session,
            )
            await handler(event, session)
            return "applied"

        try:
            return await in_transaction(self.client, work)
        except DuplicateKeyError as exc:
            if exc.details and exc.details.get("keyValue", {}).get("_id") not in (None, key):
                raise  # a duplicate in the handler's own writes, not ours
            return "duplicate"  # a concurrent delivery committed first

    async def dead_letter(
        self, topic: str, record: ConsumerRecord[Any, Any], reason: str, *, attempts: int
    ) -> None:
        headers = [
            *(record.headers or []),
            ("dlq-error", reason[:4000].encode()),
            ("dlq-consumer", self.name.encode()),
            ("dlq-attempts", str(attempts).encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
        ]
        # If this raises, the message is not committed and will be redelivered: never dropped.
        await self.producer.send_and_wait(
            self.settings.topic(dlq_topic(topic)),
            value=record.value,
            key=record.key,
            headers=headers,
        )

    def _log(
        self,
        topic: str,
        about: dict[str, Any],
        outcome: str,
        attempts: int,
        started: float,
        reason: str | None = None,
    ) -> str:
        """One structured line per message handled: what it was about and how it ended."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        level = logging.WARNING if outcome == "dead-lettered" else logging.INFO
        log.log(
            level,
            "event handled",
            extra={
                "consumer": self.name,
                "topic": topic,
                **about,
                "outcome": outcome,
                "attempts": attempts,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "reason": reason,
            },
        )
        return outcome
