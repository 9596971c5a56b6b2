"""Transactional outbox: events are written in the same MongoDB transaction as the state
change they describe, and a relay publishes them to Kafka afterwards.

A crash after the commit and before the publish leaves the entry unsent, so the next relay
pass publishes it: events can be published twice (consumers deduplicate by event id), never
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.errors import DomainError
from shared.events.catalog import EventData
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent, make_event
from shared.kafka import IdempotentProducer
from shared.mongo import Session

log = logging.getLogger(__name__)

OUTBOX = "outbox"
# Kafka's per-record framing (lengths, timestamps, attributes) plus the batch header, rounded up.
RECORD_OVERHEAD = 512
LEASES = "outbox_lease"


class Outbox:
    """Writes outgoing events into the service's `outbox` collection, inside a transaction."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        source: str,
        on_added: Callable[[], None] | None = None,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        self.collection = db[OUTBOX]
        self.source = source
        self._on_added = on_added or (lambda: None)
        self.max_message_bytes = max_message_bytes

    async def ensure_indexes(self, keep_sent: timedelta = timedelta(days=7)) -> None:
        await self.collection.create_index([("sent_at", ASCENDING), ("_id", ASCENDING)])
        await self.collection.create_index(
            "sent_at_expiry", expireAfterSeconds=int(keep_sent.total_seconds())
        )

    async def add(self, session: Session, data: EventData) -> CloudEvent[Any]:
        """Record `data` for publication on its topic, keyed by its aggregate id."""
        event = make_event(data, source=self.source, subject=data.key)
        value = event.to_bytes()
        headers = {"ce_id": str(event.id), "ce_type": event.type}
        self._check_size(data.event_name, data.key, value, headers, data)
        await self._insert(
            session, topic=data.event_name, key=data.key, value=value, headers=headers
        )
        return event

    async def add_contact(self, session: Session, key: str, record: ContactRecord | None) -> None:
        """Upsert (or, with None, erase) a party's contact on the restricted contacts topic;
        `key` is `contact_key(role, party id)`."""
        value = record.model_dump_json().encode() if record is not None else None
        if value is not None:
            self._check_size(CONTACTS_TOPIC, key, value, {}, record)
        await self._insert(session, topic=CONTACTS_TOPIC, key=key, value=value, headers={})

    def _check_size(
        self, topic: str, key: str, value: bytes, headers: dict[str, str], data: Any
    ) -> None:
        """Refuse (422, so the transaction aborts) a message the broker would refuse: written
        to the outbox, it would block every later entry of this service at the relay."""
        size = len(key.encode()) + len(value) + RECORD_OVERHEAD
        size += sum(len(k) + len(v.encode()) for k, v in headers.items())
        if size <= self.max_message_bytes:
            return
        fields = data.model_dump(mode="json")
        largest = max(fields, key=lambda name: len(json.dumps(fields[name], ensure_ascii=False)))
        raise DomainError(
            f"this change would publish a {topic} message of {size} bytes; the broker accepts "
            f"at most {self.max_message_bytes} (KAFKA_MAX_MESSAGE_BYTES). The largest part is "
            f"{largest!r}: shorten it.",
            field=largest,
        )

    async def _insert(
        self,
        session: Session,
        *,
        topic: str,
        key: str,
        value: bytes | None,
        headers: dict[str, str],
    ) -> None:
        await self.collection.insert_one(
            {
                "_id": ObjectId(),
                "topic": topic,
                "key": key,
                "value": value,
                "headers": headers,
                "created_at": datetime.now(UTC),
                "sent_at": None,
            },
            session=session,
        )
        # Nudge the relay; it publishes only what has committed, so an early nudge is harmless.
        self._on_added()


class OutboxRelay:
    """Publishes unsent outbox entries in insertion order with an idempotent producer.

    Several replicas of a service may run a relay; a lease in MongoDB lets one publish at a
    time (the others stand by), which keeps the order of a service's events. If a holder
    stalls past its lease, another takes over: at worst an entry is published twice, and
    consumers deduplicate by event id.
    """

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        producer: IdempotentProducer,
        *,
        topic_name: Callable[[str], str],
        poll_seconds: float,
        batch_size: int,
        lease_seconds: float = 15.0,
    ) -> None:
        self.collection = db[OUTBOX]
        self.producer = producer
        self.topic_name = topic_name
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self.published = 0
        self.healthy = True
        self.leases = db[LEASES]
        self.owner = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.active = False

    async def hold_lease(self) -> bool:
        """Take or renew the publishing lease; False while another relay holds it."""
        now = datetime.now(UTC)
        try:
            await self.leases.find_one_and_update(
                {"_id": "relay", "$or": [{"owner": self.owner}, {"until": {"$lt": now}}]},
                {
                    "$set": {
                        "owner": self.owner,
                        "until": now + timedelta(seconds=self.lease_seconds),
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            self.active = False  # held by another relay: the upsert collided with its lease
            return False
        self.active = True
        return True

    async def release_lease(self) -> None:
        await self.leases.update_one(
            {"_id": "relay", "owner": self.owner}, {"$set": {"until": datetime.now(UTC)}}
        )
        self.active = False

    def wake(self) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent entries; returns how many were published."""
        entries = await (
            self.collection.find({"sent_at": None}).sort("_id", ASCENDING).limit(self.batch_size)
        ).to_list()
        if not entries:
            return 0
        futures = []
        for entry in entries:
            headers = [(k, v.encode()) for k, v in entry.get("headers", {}).items()]
            futures.append(
                await self.producer.send(
                    self.topic_name(entry["topic"]),
                    value=entry["value"],
                    key=entry["key"].encode(),
                    headers=headers,
                )
            )
        await asyncio.gather(*futures)
        now = datetime.now(UTC)
        await self.collection.update_many(
            {"_id": {"$in": [e["_id"] for e in entries]}},
            {"$set": {"sent_at": now, "sent_at_expiry": now}},
        )
        self.published += len(entries)
        log.debug("outbox published", extra={"count": len(entries)})
        return len(entries)

    async def run(self) -> None:
        backoff = self.poll_seconds
        while True:
            self._wake.clear()  # before reading, so a nudge during the pass is not lost
            try:
                while await self.hold_lease() and await self.publish_pending() == self.batch_size:
                    pass  # a full batch: there may be more right away
                self.healthy = True
                backoff = self.poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception:
                self.healthy = False
                log.exception("outbox relay failed; retrying", extra={"retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that coincides with a wake-up, and the service then never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
