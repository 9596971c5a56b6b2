"""Transactional outbox: events are written in the same MongoDB transaction as the state
change they describe, and a relay publishes them to Kafka afterwards.

A crash after the commit and before the publish leaves the entry unsent, so the next relay
pass publishes it: events can be published twice (consumers deduplicate by event id), never
lost.

Trust the broker, but verify: the relay records the partition and offset the broker
returned for each entry and, `verify_after` seconds later (the broker's durability window),
reads them back. An entry missing or different at its offset (a broker that lost
acknowledged writes on a crash, as the embedded one can) is published again, together with
the later entries of the same key, so that the last value of each key stays the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from bson import ObjectId
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import mongo, tracing
from shared.errors import DomainError
from shared.events.catalog import EventData
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent, make_event
from shared.kafka import (
    CLOUDEVENTS_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PRODUCER_STATE_ERRORS,
    IdempotentProducer,
)
from shared.metrics import ServiceMetrics
from shared.mongo import Session, after_commit, in_transaction
from shared.weather import KAFKA, MONGODB

log = logging.getLogger(__name__)

OUTBOX = "outbox"
# Kafka's per-record framing (lengths, timestamps, attributes) plus the batch header, rounded up.
RECORD_OVERHEAD = 512
LEASES = "outbox_lease"
CLIENT = "kitakyushu-outbox-verifier"


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
        await self.collection.create_index([("verify_at", ASCENDING)], sparse=True)
        await self.collection.create_index(
            "sent_at_expiry", expireAfterSeconds=int(keep_sent.total_seconds())
        )

    async def add(self, session: Session, data: EventData) -> CloudEvent[Any]:
        """Record `data` for publication on its topic, keyed by its aggregate id."""
        event, entry = self._event_entry(data)
        await self.collection.insert_one(entry, session=session)
        # Nudge the relay once the transaction has committed: nudged before, it would read
        # nothing new and the entry would wait for the next poll.
        after_commit(session, self._on_added)
        return event

    async def add_many(
        self, session: Session, items: Iterable[EventData], chunk: int = 500
    ) -> list[CloudEvent[Any]]:
        """`add` for many events (a round's proposals), in order, in the caller's transaction:
        one insert_many per `chunk` entries instead of one round trip per event."""
        events: list[CloudEvent[Any]] = []
        entries: list[dict[str, Any]] = []
        for data in items:
            event, entry = self._event_entry(data)
            events.append(event)
            entries.append(entry)
        for start in range(0, len(entries), chunk):
            await self.collection.insert_many(
                entries[start : start + chunk], ordered=True, session=session
            )
        if entries:
            after_commit(session, self._on_added)
        return events

    def _event_entry(self, data: EventData) -> tuple[CloudEvent[Any], dict[str, Any]]:
        """The CloudEvent of `data` and its outbox entry (size checked)."""
        event = make_event(data, source=self.source, subject=data.key)
        # CloudEvents Kafka protocol binding, structured content mode: the whole event is the
        # value and the content-type header says so (no ce_* headers: those mean binary mode).
        # `traceparent` (W3C trace context, as OpenTelemetry's Kafka instrumentations send
        # it) and `request-id` ride along as plain headers: the trace goes on in consumers.
        with tracing.creating(data.event_name, str(event.id), data.key) as trace_headers:
            value = event.to_bytes()
            headers = {"content-type": CLOUDEVENTS_CONTENT_TYPE, **trace_headers}
            self._check_size(data.event_name, data.key, value, headers, data)
        return event, _entry(topic=data.event_name, key=data.key, value=value, headers=headers)

    async def add_contact(self, session: Session, key: str, record: ContactRecord | None) -> None:
        """Upsert (or, with None, erase) a party's contact on the restricted contacts topic;
        `key` is `contact_key(role, party id)`."""
        value = record.model_dump_json().encode() if record is not None else None
        headers = {"content-type": JSON_CONTENT_TYPE} if value is not None else {}
        with tracing.creating(CONTACTS_TOPIC, None, key) as trace_headers:
            headers = {**headers, **trace_headers}
            if value is not None:
                self._check_size(CONTACTS_TOPIC, key, value, headers, record)
            await self._insert(session, topic=CONTACTS_TOPIC, key=key, value=value, headers=headers)

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
        entry = _entry(topic=topic, key=key, value=value, headers=headers)
        await self.collection.insert_one(entry, session=session)
        after_commit(session, self._on_added)


def _entry(*, topic: str, key: str, value: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
    # ObjectIds grow in creation order: the relay publishes by _id, so in this order.
    return {
        "_id": ObjectId(),
        "topic": topic,
        "key": key,
        "value": value,
        "headers": headers,
        "created_at": datetime.now(UTC),
        "sent_at": None,
    }


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
        verify_after_seconds: float = 0.0,
        stuck_seconds: float = 120.0,
        ensure_topics: Callable[[], Awaitable[Any]] | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.db = db
        # Unexported unless the service's own are given (tests build relays alone).
        self.metrics = metrics or ServiceMetrics("outbox")
        self.collection = db[OUTBOX]
        self.producer = producer
        self.topic_name = topic_name
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self.published = 0
        self.republished = 0
        self.healthy = True
        self.leases = db[LEASES]
        self.owner = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.active = False
        self._lease_until = 0.0
        self.verify_after = verify_after_seconds
        self.stuck_seconds = stuck_seconds
        self._stuck_since: float | None = None
        self._next_verify: float | None = None
        self._reader: AIOKafkaConsumer | None = None
        # Creates the service's topics with their configuration: a broker that lost a topic
        # would otherwise auto-create it with its defaults when the relay republishes.
        self._ensure_topics = ensure_topics

    # -- lease ----------------------------------------------------------------------------

    async def hold_lease(self) -> bool:
        """Take or renew the publishing lease; False while another relay holds it.

        A holder renews it only when half of it has passed: a write per pass would cost the
        embedded MongoDB a synced write twice a second for nothing."""
        remaining = self._lease_until - time.monotonic()
        if self.active and self.lease_seconds / 2 < remaining <= self.lease_seconds:
            return True
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
        self._lease_until = time.monotonic() + self.lease_seconds
        return True

    async def release_lease(self) -> None:
        await self.leases.update_one(
            {"_id": "relay", "owner": self.owner}, {"$set": {"until": datetime.now(UTC)}}
        )
        self.active = False
        self._lease_until = 0.0

    def wake(self) -> None:
        self._wake.set()

    # -- publishing -----------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """Publish one batch of unsent entries; returns how many were published."""
        entries = await (
            self.collection.find({"sent_at": None}).sort("_id", ASCENDING).limit(self.batch_size)
        ).to_list()
        if not entries:
            self._stuck_since = None
            return 0
        if self._stuck_since is None:
            self._stuck_since = time.monotonic()
        with tracing.sending(entries):  # a failure raised by _settle marks the span failed
            return await self._settle(entries, await self._send(entries))

    async def _send(self, entries: list[dict[str, Any]]) -> list[Any]:
        """Queue every entry, then wait for the broker's answers (metadata or an error)."""
        futures = []
        for entry in entries:
            headers = [(k, v.encode()) for k, v in entry.get("headers", {}).items()]
            try:
                futures.append(
                    await self.producer.send(
                        self.topic_name(entry["topic"]),
                        value=entry["value"],
                        key=entry["key"].encode(),
                        headers=headers,
                    )
                )
            except Exception as exc:  # queueing failed: what was queued still counts
                futures.append(_failed(exc))
                break
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _settle(self, entries: list[dict[str, Any]], results: list[Any]) -> int:
        # Only the entries before the first failure count as sent: the rest is published
        # again in order, so that no key's later event overtakes an earlier one for good.
        sent: list[tuple[dict[str, Any], Any]] = []
        failure: BaseException | None = None
        for entry, result in zip(entries, results, strict=False):
            if isinstance(result, BaseException):
                failure = result
                break
            sent.append((entry, result))
        if sent:
            await self._mark_sent(sent)
            self.published += len(sent)
            self.metrics.outbox_published.inc(len(sent))
            self._stuck_since = None if len(sent) == len(entries) else time.monotonic()
            KAFKA.up()
        if failure is not None:
            if isinstance(failure, PRODUCER_STATE_ERRORS):
                # The broker forgot this producer (restart) or fenced it: a new producer
                # (new id, sequences from zero) publishes what is left.
                await self.producer.recreate(failure)
            raise failure
        log.debug("outbox published", extra={"count": len(sent)})
        return len(sent)

    async def _mark_sent(self, sent: list[tuple[dict[str, Any], Any]]) -> None:
        now = datetime.now(UTC)
        verify_at = now + timedelta(seconds=self.verify_after) if self.verify_after else None
        updates = []
        for entry, metadata in sent:
            fields: dict[str, Any] = {"sent_at": now}
            offset = getattr(metadata, "offset", -1)
            if verify_at is not None and offset is not None and offset >= 0:
                fields.update(partition=metadata.partition, offset=offset, verify_at=verify_at)
            elif verify_at is not None:
                # No offset came back (a duplicate the broker recognised): publish it once more
                # after the window rather than trust what cannot be read back.
                fields.update(partition=None, offset=None, verify_at=verify_at)
            else:
                fields["sent_at_expiry"] = now
            updates.append(UpdateOne({"_id": entry["_id"]}, {"$set": fields}))
        # One transaction: on the embedded MongoDB a multi-statement write outside a
        # transaction syncs every statement (measured 3x slower for 50 entries).
        await in_transaction(
            self.collection.database.client,
            lambda s: self.collection.bulk_write(updates, ordered=False, session=s),
        )
        if verify_at is not None:
            due = time.monotonic() + self.verify_after
            self._next_verify = min(self._next_verify or due, due)

    # -- verification ---------------------------------------------------------------------

    async def verify_due(self) -> int:
        """Read back the entries whose durability window has passed; republish the ones the
        broker no longer has at their offset. Returns how many were republished."""
        now = datetime.now(UTC)
        entries = await (
            self.collection.find({"verify_at": {"$lte": now}})
            .sort("_id", ASCENDING)
            .limit(self.batch_size * 5)
        ).to_list()
        if not entries:
            self._next_verify = await self._next_verification()
            return 0
        try:
            found, topics_missing = await asyncio.wait_for(self._read_back(entries), timeout=20)
        except Exception:
            await self.close()  # a reader that lost its broker (restart) starts afresh
            raise
        if topics_missing and self._ensure_topics is not None:
            await self._ensure_topics()
        lost = [e for e in entries if not self._still_there(e, found)]
        confirmed = [e["_id"] for e in entries if self._still_there(e, found)]
        republished = 0
        if lost:
            republished = await self._republish(lost)
        if confirmed:
            await self.collection.update_many(
                {"_id": {"$in": confirmed}},
                {"$set": {"sent_at_expiry": now}, "$unset": {"verify_at": ""}},
            )
        self._next_verify = await self._next_verification()
        return republished

    async def _next_verification(self) -> float | None:
        doc = await self.collection.find_one(
            {"verify_at": {"$ne": None}}, sort=[("verify_at", ASCENDING)], projection=["verify_at"]
        )
        if doc is None:
            return None
        wait = (doc["verify_at"] - datetime.now(UTC)).total_seconds()
        return time.monotonic() + max(wait, 0.0)

    async def _read_back(
        self, entries: list[dict[str, Any]]
    ) -> tuple[dict[tuple[str, int, int], tuple[bytes | None, bytes | None]], bool]:
        """(topic, partition, offset) -> (key, value) for the offsets of `entries`, and
        whether a topic (or partition) is missing altogether."""
        wanted: dict[TopicPartition, set[int]] = defaultdict(set)
        for e in entries:
            if e.get("offset") is not None:
                wanted[TopicPartition(self.topic_name(e["topic"]), e["partition"])].add(e["offset"])
        found: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]] = {}
        if not wanted:
            return found, False
        reader = await self._reader_consumer()
        # Fresh metadata of every topic (a crashed broker may have lost one). The consumer's
        # public topics() returns names only and leaves its own metadata as it was.
        cluster = await reader._client.fetch_all_metadata()
        present = {
            tp for tp in wanted if tp.partition in (cluster.partitions_for_topic(tp.topic) or ())
        }
        missing = len(present) < len(wanted)
        wanted = {tp: offsets for tp, offsets in wanted.items() if tp in present}
        if not wanted:
            return found, missing
        reader.assign(list(wanted))
        try:
            await self._read_offsets(reader, wanted, found)
        finally:
            # An assigned reader left idle fetches without end from a broker that answers
            # empty fetches at once (the embedded one): ~20 % of a core in an idle service.
            reader.pause(*wanted)
        return found, missing

    async def _read_offsets(
        self,
        reader: AIOKafkaConsumer,
        wanted: dict[TopicPartition, set[int]],
        found: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]],
    ) -> None:
        ends = await reader.end_offsets(list(wanted))
        for tp, offsets in wanted.items():
            low, high = min(offsets), min(max(offsets) + 1, ends[tp])
            if low >= high:
                continue  # the log ends before them: all lost
            reader.seek(tp, low)
            deadline = time.monotonic() + 10
            while await reader.position(tp) < high and time.monotonic() < deadline:
                batch = await reader.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    if record.offset in offsets:
                        found[(tp.topic, tp.partition, record.offset)] = (record.key, record.value)

    def _still_there(
        self,
        entry: dict[str, Any],
        found: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]],
    ) -> bool:
        """The broker has this entry's key and value at the offset it acknowledged."""
        if entry.get("offset") is None:
            return False
        at = (self.topic_name(entry["topic"]), entry["partition"], entry["offset"])
        return found.get(at) == (entry["key"].encode(), entry["value"])

    async def _reader_consumer(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = AIOKafkaConsumer(
                bootstrap_servers=self.producer.bootstrap,
                client_id=CLIENT,
                enable_auto_commit=False,
                group_id=None,
                request_timeout_ms=10_000,
                **self.producer.options,  # the producer's connection security
            )
            await reader.start()
            self._reader = reader
        return self._reader

    async def _republish(self, lost: list[dict[str, Any]]) -> int:
        """Mark lost entries unsent, with every later entry of the same (topic, key): the
        relay then publishes them again in their original order."""
        first: dict[tuple[str, str], ObjectId] = {}
        for e in lost:
            first.setdefault((e["topic"], e["key"]), e["_id"])
        conditions = [
            {"topic": topic, "key": key, "_id": {"$gte": oid}}
            for (topic, key), oid in first.items()
        ]
        result = await self.collection.update_many(
            {"$or": conditions, "sent_at": {"$ne": None}},
            {
                "$set": {"sent_at": None},
                "$unset": {"verify_at": "", "partition": "", "offset": "", "sent_at_expiry": ""},
            },
        )
        log.warning(
            "outbox entries missing on the broker after it acknowledged them; republishing",
            extra={"lost": len(lost), "republished": result.modified_count},
        )
        self.republished += result.modified_count
        self.metrics.outbox_republished.inc(result.modified_count)
        self._wake.set()
        return int(result.modified_count)

    async def backlog(self) -> Backlog:
        """What waits: unsent entries, the oldest one's age, sent ones awaiting read-back."""
        unsent = await self.collection.count_documents({"sent_at": None})
        oldest = None
        if unsent:
            oldest = await self.collection.find_one(
                {"sent_at": None}, sort=[("_id", ASCENDING)], projection=["created_at"]
            )
        unverified = (
            await self.collection.count_documents({"verify_at": {"$exists": True}})
            if self.verify_after
            else 0
        )
        age = 0.0
        if oldest is not None:
            age = max(0.0, (datetime.now(UTC) - oldest["created_at"]).total_seconds())
        return Backlog(unsent=unsent, oldest_age_seconds=age, unverified=unverified)

    # -- loop -----------------------------------------------------------------------------

    @property
    def stuck(self) -> bool:
        """Unsent entries have made no progress for longer than the bound."""
        since = self._stuck_since
        return since is not None and time.monotonic() - since > self.stuck_seconds

    async def run(self) -> None:
        backoff = self.poll_seconds
        if self.verify_after:
            # Entries sent before a restart still need their read-back.
            self._next_verify = time.monotonic()
        while True:
            self._wake.clear()  # before reading, so a nudge during the pass is not lost
            try:
                if await self.hold_lease():
                    while await self.publish_pending() == self.batch_size:
                        pass  # a full batch: there may be more right away
                    if self._next_verify is not None and time.monotonic() >= self._next_verify:
                        await self.verify_due()
                self.healthy = True
                MONGODB.up()
                backoff = self.poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.healthy = False
                if mongo.is_unavailable(exc):
                    MONGODB.down(exc)
                elif not mongo.is_conflict(exc):  # a lost race is retried, no outage
                    KAFKA.down(exc)
                    if self._stuck_since is not None and self.stuck:
                        await self._recreate_quietly(exc)
                log.info("outbox relay pass failed: %r", exc, extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            timeout = self.poll_seconds
            if self._next_verify is not None:
                timeout = max(0.05, min(timeout, self._next_verify - time.monotonic()))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that coincides with a wake-up, and the service then never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _recreate_quietly(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):
            await self.producer.recreate(exc)

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout=5)


@dataclass(frozen=True)
class Backlog:
    unsent: int
    oldest_age_seconds: float
    unverified: int


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future
