"""Idempotent Kafka consumers: at-least-once delivery made effectively-once, a poll batch at a
time.

One aiokafka consumer per service, in one consumer group per service, reads every topic the
service consumes. What a poll returns for one partition is applied in ONE MongoDB
transaction: the already-processed event ids are filtered with one query, the handlers run in
order on the same session, and the new ids go into `processed_events` with one insert_many.
A redelivered event finds its id there and has no second effect. The partition's offset is
committed only after that transaction committed, never before.

Bad message or bad weather:
- An invalid message, or one a handler rejects (`RejectEvent`), goes to `<topic>.dlq` at once,
  and only that message: a failing message in a batch is split out, the messages before it
  are applied as a batch, the ones after it go on.
- A handler that raises anything else for one message is retried alone
  (`CONSUMER_MAX_ATTEMPTS`), then dead-lettered: a bug that one message triggers must not
  stop the partition forever.
- MongoDB or Kafka unreachable, timeouts: the partition stays paused and the same records
  are retried with backoff and jitter until the dependency is back.
- Transaction conflicts (another partition's transaction wrote the same document) are no
  outage: `shared.mongo.in_transaction` runs the transaction again at once with a short
  jittered pause, within MONGO_TRANSACTION_SECONDS, and counts each in
  `kitakyushu_mongodb_transaction_conflicts_total`; past that bound the batch is tried again
  soon, never paused as an outage nor dead-lettered.
  Nothing is dead-lettered for an outage and the per-key order is kept (one partition is
  handled by one worker at a time, in offset order).

Why our own aiokafka loop and not FastStream's batch subscriber: we need a transaction and an
offset commit per partition, pause/resume of one partition while the others go on, static
group membership, and a pause after an empty fetch (see `shared.kafka.hold_empty_fetches`);
FastStream's subscriber flattens a poll into one list, commits the whole consumer, and logs
every Kafka error at ERROR while retrying. FastStream still documents every consumed topic
with its payload schema: `ServiceRuntime` declares them on its AsyncAPI broker.

Observability: each message handled is a `process <topic>` span, a child of the context it
was produced in (its `traceparent` header), inside a `transaction <topic>` span per batch
linked to every message's producer (shared/tracing.py); each gets one log line with its
trace id and request id, and counts in `kitakyushu_consumer_events_total{topic,outcome}`.

Partitions come back quickly after a crash: the consumer joins with static membership
(`group.instance.id`, KIP-345). A member restarted with the same instance id takes its
partitions back at once, on the embedded broker (which never evicts a dead dynamic member)
and on Apache Kafka; on Apache Kafka a member that does not come back is evicted after the
session timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared import kafka, mongo, tracing
from shared.connections import kafka_client_options
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent, parse_event
from shared.kafka import FetchPacer, IdempotentProducer, dlq_topic, hold_empty_fetches
from shared.metrics import ServiceMetrics
from shared.mongo import Session, in_transaction
from shared.settings import CommonSettings
from shared.weather import KAFKA, MONGODB, Dependency

log = logging.getLogger(__name__)

PROCESSED = "processed_events"

EventHandler = Callable[[CloudEvent[Any], Session], Awaitable[None]]
# Optional: all new (not yet processed) events of one poll for one partition, in order, e.g.
# to write them with one bulk_write. If it raises, the batch is split in halves until the
# failing event is alone, which then gets the per-message retry and DLQ rules.
BatchHandler = Callable[[list[CloudEvent[Any]], Session], Awaitable[None]]
# The same for contacts: (key, record or None for an erasure) of one poll, in order.
ContactBatchHandler = Callable[[list[tuple[str, ContactRecord | None]], Session], Awaitable[None]]


class RejectEvent(Exception):
    """The event can never be applied (e.g. it contradicts this service's state): dead-letter
    it at once instead of retrying."""


def is_bad_weather(exc: BaseException) -> bool:
    """An infrastructure failure (retry until it passes), not a fault of the message."""
    return mongo.is_unavailable(exc) or kafka.is_unavailable(exc)


def _dependency_of(exc: BaseException) -> Dependency:
    return MONGODB if mongo.is_unavailable(exc) else KAFKA


@dataclass
class _Route:
    topic: str  # the catalog name, without the deployment's prefix
    contacts: bool
    handler: Any  # EventHandler or BatchHandler; ContactBatchHandler for the contacts topic
    batch: bool = False  # the handler takes all new items of a poll at once


@dataclass
class _Item:
    record: ConsumerRecord[Any, Any]
    event: CloudEvent[Any] | None = None
    party_id: str = ""
    contact: ContactRecord | None = None
    invalid: str | None = None
    trace_id: str | None = None  # of the last span that handled it, else of its producer
    request_id: str | None = None  # of the HTTP request that caused it, if known

    @property
    def about(self) -> dict[str, Any]:
        if self.event is not None:
            ev = self.event
            return {"event_id": str(ev.id), "event_type": ev.type, "subject": ev.subject}
        if self.party_id:
            return {"party_id": self.party_id, "erased": self.contact is None}
        return {}


class _ItemFailed(Exception):
    """A handler failed on the item at `index` of a batch (not an infrastructure failure)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(repr(error))
        self.index = index
        self.error = error


class _Raced(Exception):
    """Another delivery of the same event committed first; retry, and find it processed."""


class IdempotentConsumer:
    """Applies the topics one service consumes, with one consumer and one group per service.

    `start()`/`stop()` run it; if a FastStream `broker` is given, the broker's own start and
    stop run it too (for code that drives a FastStream broker)."""

    def __init__(
        self,
        *,
        name: str,
        client: AsyncMongoClient[dict[str, Any]],
        db: AsyncDatabase[dict[str, Any]],
        producer: IdempotentProducer,
        settings: CommonSettings,
        broker: KafkaBroker | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.name = name
        # Unexported unless the service's own are given (tests build consumers alone).
        self.metrics = metrics or ServiceMetrics(name)
        self.client = client
        self.processed = db[PROCESSED]
        self.producer = producer
        self.settings = settings
        self.counts: dict[str, int] = {"applied": 0, "duplicate": 0, "dead-lettered": 0}
        self.routes: dict[str, _Route] = {}  # by the topic's full name
        self._consumer: AIOKafkaConsumer | None = None
        self._pacer: FetchPacer | None = None
        self._task: asyncio.Task[None] | None = None
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(settings.consumer_concurrency)
        # Every transaction on this client (the service's API too) is bounded and counts its
        # conflicts in the service's metrics.
        mongo.configure_transactions(
            client,
            seconds=settings.mongo_transaction_seconds,
            on_conflict=self.metrics.transaction_conflicts.inc,
        )
        self.assigned = asyncio.Event()
        self.running = False
        # Told of each dead-lettered message after it is on the DLQ (topic, value, reason),
        # e.g. to show the people concerned what could not be applied.
        self.on_dead_letter: Callable[[str, bytes | None, str], Awaitable[None]] | None = None
        if broker is not None:
            _run_with_broker(broker, self)

    # -- registration -------------------------------------------------------------------

    def subscribe(self, topic: str, handler: EventHandler) -> None:
        self.routes[self.settings.topic(topic)] = _Route(topic, False, handler)

    def subscribe_batch(self, topic: str, handler: BatchHandler) -> None:
        self.routes[self.settings.topic(topic)] = _Route(topic, False, handler, batch=True)

    def subscribe_contacts_batch(self, handler: ContactBatchHandler) -> None:
        route = _Route(CONTACTS_TOPIC, True, handler, batch=True)
        self.routes[self.settings.topic(CONTACTS_TOPIC)] = route

    @property
    def group_id(self) -> str:
        return self.settings.group(self.name)

    async def ensure_indexes(self) -> None:
        # _id is (consumer, event id): unique by construction.
        await self.processed.create_index("processed_at")

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming in the background (joining the group may take a moment; the
        service does not wait for it)."""
        if not self.routes or self._task is not None:
            return
        self.running = True
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-consumer")

    async def stop(self) -> None:
        self.running = False
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        await self._finish_workers(list(self._workers), timeout=10)
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), timeout=10)
        self.assigned.clear()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The consumer's loop (for liveness: a loop that died with an error)."""
        return [self._task] if self._task is not None else []

    @property
    def healthy(self) -> bool:
        """Consuming, or nothing to consume (joining the group may still be under way)."""
        return not self.routes or (self._task is not None and not self._task.done())

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id=f"{self.name}-consumer",
            group_id=self.group_id,
            # Static membership: a restarted member with the same id gets its partitions back
            # at once, without waiting for the broker to notice the old one is gone.
            group_instance_id=s.group_instance_id(self.name),
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(s.kafka_session_timeout_ms // 4, 500),
            enable_auto_commit=False,  # commit after the transaction, never before
            auto_offset_reset="earliest",
            max_poll_records=s.consumer_batch_size,
            **kafka_client_options(s),
        )

    async def _run(self) -> None:
        backoff = _Backoff()
        # `running`, not True: a cancellation swallowed inside the Kafka client (Python 3.11's
        # wait_for can) must not keep the loop, and the stop waiting on it, alive.
        while self.running:
            try:
                if self._consumer is None:
                    consumer = self._new_consumer()
                    consumer.subscribe(list(self.routes), listener=_Listener(self))
                    await consumer.start()
                    self._pacer = hold_empty_fetches(
                        consumer,
                        self.settings.kafka_empty_fetch_pause_ms / 1000,
                        self.settings.kafka_empty_fetch_pause_max_ms / 1000,
                    )
                    self._consumer = consumer
                batch = await self._consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                KAFKA.down(exc)
                await self._drop_consumer()
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            if batch:
                KAFKA.up()
                if self._pacer is not None:
                    self._pacer.busy()
            for tp, records in batch.items():
                self._consumer.pause(tp)  # one worker per partition keeps the order
                self._workers[tp] = asyncio.create_task(
                    self._work(tp, records), name=f"{self.name}-{tp.topic}-{tp.partition}"
                )

    async def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Start `settings.kafka_rewind_on_assign` records before each committed offset
        (see the setting): what was applied already is filtered as a duplicate."""
        rewind = self.settings.kafka_rewind_on_assign
        consumer = self._consumer
        if not rewind or consumer is None or not partitions:
            return
        try:
            beginnings = await consumer.beginning_offsets(partitions)
            for tp in partitions:
                committed = await consumer.committed(tp)
                if committed is not None and committed > beginnings.get(tp, 0):
                    consumer.seek(tp, max(beginnings.get(tp, 0), committed - rewind))
        except KafkaError as exc:  # the committed offsets stand: nothing is read twice
            log.warning("could not rewind after an assignment", extra={"error": repr(exc)})

    async def _drop_consumer(self) -> None:
        await self._finish_workers(list(self._workers), timeout=0)
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), timeout=10)

    async def _finish_workers(self, partitions: list[TopicPartition], timeout: float) -> None:
        """Let the workers of `partitions` finish their transaction (up to `timeout`), then
        cancel what is left: their records are redelivered and deduplicated."""
        tasks = [self._workers[tp] for tp in partitions if tp in self._workers]
        if not tasks:
            return
        if timeout > 0:
            await asyncio.wait(tasks, timeout=timeout)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        try:
            async with self._slots:
                await self._handle_partition(self.routes[tp.topic], records)
            await self._commit(tp, records[-1].offset + 1)
        except asyncio.CancelledError:
            pass
        except Exception:
            # Not expected (every failure is retried or dead-lettered): the records will be
            # redelivered when the partition is fetched again from its committed offset.
            log.exception("consumer worker failed", extra={"topic": tp.topic})
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    await self._consumer.seek_to_committed(tp)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(5)
        finally:
            self._workers.pop(tp, None)
            consumer = self._consumer
            if consumer is not None and tp in consumer.assignment():
                consumer.resume(tp)
                if self._pacer is not None:
                    self._pacer.busy()  # its next records are fetched at once

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        try:
            await consumer.commit({tp: offset})
        except CommitFailedError:
            # The group rebalanced meanwhile; whoever has the partition now re-reads from the
            # last committed offset and finds these events processed.
            log.info("offset commit skipped after a rebalance", extra={"topic": tp.topic})
        except KafkaError as exc:
            KAFKA.down(exc)  # a later commit covers these offsets too

    # -- one partition's records ---------------------------------------------------------

    async def _handle_partition(
        self, route: _Route, records: list[ConsumerRecord[Any, Any]]
    ) -> None:
        items = [self._decode(route, record) for record in records]
        start = 0
        while start < len(items):
            if items[start].invalid is not None:
                item = items[start]
                await self._dead_letter(route, item, f"invalid {_kind(route)}: {item.invalid}", 1)
                start += 1
                continue
            end = start
            while end < len(items) and items[end].invalid is None:
                end += 1
            await self._apply_run(route, items[start:end])
            start = end

    def _decode(self, route: _Route, record: ConsumerRecord[Any, Any]) -> _Item:
        item = _Item(record)
        item.trace_id = tracing.trace_id_of_context(tracing.context_from(record.headers))
        item.request_id = tracing.request_id_from(record.headers)
        try:
            if route.contacts:
                item.party_id = record.key.decode() if record.key else ""
                if not item.party_id:
                    raise ValueError("contact message without a key")
                if record.value is not None:
                    item.contact = ContactRecord.model_validate_json(record.value)
            else:
                item.event = parse_event(record.value, expected=route.topic)
        except Exception as exc:  # invalid JSON, envelope or payload: retrying cannot help
            item.invalid = str(exc)
        return item

    async def _apply_run(self, route: _Route, items: list[_Item]) -> None:
        """Apply valid items in order, as few transactions as the handlers allow."""
        start, end = 0, len(items)
        while start < len(items):
            started = time.perf_counter()
            batch = items[start:end]
            try:
                outcomes = await self._in_fair_weather(
                    lambda batch=batch: self._apply_batch(route, batch)  # type: ignore[misc]
                )
            except _ItemFailed as failed:
                if failed.index < 0:  # a batch handler failed: halve until it is alone
                    end = start + max(1, (end - start) // 2)
                    continue
                if failed.index > 0:
                    end = start + failed.index  # first the items before the failing one
                    continue
                await self._apply_alone(route, items[start], failed.error)
                start, end = start + 1, len(items)
                continue
            for item, outcome in zip(items[start:end], outcomes, strict=True):
                self._log(route, item, outcome, 1, started)
            start, end = end, len(items)

    async def _apply_alone(self, route: _Route, item: _Item, error: Exception) -> None:
        """A handler failed on this item: retry it alone, then dead-letter it."""
        attempt = 1
        while True:
            if isinstance(error, RejectEvent):
                await self._dead_letter(route, item, f"rejected: {error}", attempt)
                return
            if attempt >= self.settings.consumer_max_attempts:
                reason = f"failed after {attempt} attempts: {error!r}"
                log.error(
                    "handler failed; dead-lettered", extra={**self._ids(item), "error": reason}
                )
                await self._dead_letter(route, item, reason, attempt)
                return
            log.warning(
                "handler failed; retrying",
                extra={**self._ids(item), "attempt": attempt, "error": repr(error)},
            )
            self.metrics.events.labels(route.topic, "retried").inc()
            await asyncio.sleep(self.settings.consumer_retry_backoff_seconds * 2 ** (attempt - 1))
            attempt += 1
            started = time.perf_counter()
            try:
                (outcome,) = await self._in_fair_weather(lambda: self._apply_batch(route, [item]))
            except _ItemFailed as failed:
                error = failed.error
                continue
            self._log(route, item, outcome, attempt, started)
            return

    async def _apply_batch(self, route: _Route, items: list[_Item]) -> list[str]:
        """One transaction for `items`; returns each item's outcome."""
        started = time.perf_counter()
        try:
            with tracing.transaction(self.group_id, route.topic, [i.record for i in items]):
                return await self._transaction(route, items)
        finally:
            self.metrics.transactions.labels(route.topic).observe(time.perf_counter() - started)

    async def _transaction(self, route: _Route, items: list[_Item]) -> list[str]:
        if route.contacts:
            return await in_transaction(
                self.client, lambda s: self._apply_contacts(route, items, s)
            )
        try:
            return await in_transaction(self.client, lambda s: self._apply_events(route, items, s))
        except (DuplicateKeyError, BulkWriteError) as exc:
            if self._our_duplicate(exc):
                raise _Raced() from exc  # a concurrent delivery of one of these committed first
            raise

    def _our_duplicate(self, exc: DuplicateKeyError | BulkWriteError) -> bool:
        """True if the duplicate key is one of our processed-event ids."""
        errors = (exc.details or {}).get("writeErrors") or [exc.details or {}]
        ids = [str(e.get("keyValue", {}).get("_id", "")) for e in errors]
        return bool(ids) and all(i.startswith(f"{self.name}:") for i in ids)

    async def _apply_events(self, route: _Route, items: list[_Item], session: Session) -> list[str]:
        keys = [f"{self.name}:{item.event.id}" for item in items if item.event is not None]
        done = {
            doc["_id"]
            for doc in await self.processed.find(
                {"_id": {"$in": keys}}, {"_id": 1}, session=session
            ).to_list()
        }
        outcomes: list[str] = []
        fresh: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for index, (item, key) in enumerate(zip(items, keys, strict=True)):
            event = item.event
            assert event is not None
            if key in done:
                outcomes.append("duplicate")
                continue
            done.add(key)  # the same event twice in one batch: the second is a duplicate
            if not route.batch:
                with self._processing(route, item):
                    await self._call(index, route.handler(event, session))
            fresh.append(
                {
                    "_id": key,
                    "consumer": self.name,
                    "event_id": str(event.id),
                    "type": event.type,
                    "processed_at": now,
                }
            )
            outcomes.append("applied")
        if route.batch and fresh:
            applied = [i for i, o in zip(items, outcomes, strict=True) if o == "applied"]
            await self._call_batch(
                route, items, applied, lambda: route.handler([i.event for i in applied], session)
            )
        if fresh:
            await self.processed.insert_many(fresh, ordered=False, session=session)
        return outcomes

    async def _apply_contacts(
        self, route: _Route, items: list[_Item], session: Session
    ) -> list[str]:
        # Upserts and erasures are idempotent by nature (last write wins), so no event id.
        pairs = [(i.party_id, i.contact) for i in items]
        await self._call_batch(route, items, items, lambda: route.handler(pairs, session))
        return ["applied"] * len(items)

    async def _call_batch(
        self,
        route: _Route,
        items: list[_Item],
        handled: list[_Item],
        call: Callable[[], Awaitable[None]],
    ) -> None:
        """One handler call for `handled` (of the batch `items`). Each item still gets its
        own `process` span (a child of its producer's context), open while the one call
        handles them all. Which item failed is unknown: -1 asks the caller to split the
        batch, unless it is one item already."""
        with contextlib.ExitStack() as spans:
            for item in handled:
                spans.enter_context(self._processing(route, item))
            await self._call(0 if len(items) == 1 else -1, call())

    @contextlib.contextmanager
    def _processing(self, route: _Route, item: _Item) -> Any:
        """The message's own span (see shared/tracing.py), current while its handler runs."""
        event_id = str(item.event.id) if item.event is not None else None
        with tracing.processing(self.group_id, route.topic, item.record, event_id) as span:
            item.trace_id = tracing.trace_id_of(span)
            try:
                yield span
            except _ItemFailed as failed:
                tracing.failed(span, failed.error)
                raise
            except Exception as exc:
                tracing.failed(span, exc)
                raise

    def _ids(self, item: _Item) -> dict[str, Any]:
        """What a log line about `item` says it is about, and its trace and request ids."""
        return {**item.about, "trace_id": item.trace_id, "request_id": item.request_id}

    @staticmethod
    async def _call(index: int, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception as exc:
            if is_bad_weather(exc) or mongo.is_conflict(exc):
                raise  # the transaction helper retries transient errors as they are
            raise _ItemFailed(index, exc) from exc

    async def _in_fair_weather(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run `work`; while MongoDB or Kafka is unreachable, wait with backoff and jitter and
        try again (the partition stays paused meanwhile)."""
        backoff = _Backoff(self.settings.consumer_outage_backoff_max_seconds)
        away: Dependency | None = None
        while True:
            try:
                result = await work()
            except _Raced:
                continue
            except Exception as exc:
                if mongo.is_conflict(exc):
                    # Lost races for the whole transaction bound (each one counted as a
                    # conflict): go again soon. MongoDB is there; this is no outage.
                    await asyncio.sleep(random.uniform(0.05, 0.5))
                    continue
                if not is_bad_weather(exc):
                    raise
                away = _dependency_of(exc)
                away.down(exc)
                self.metrics.outages.labels(away.name.lower()).inc()
                await asyncio.sleep(backoff.next())
                continue
            if away is not None:
                away.up()
            return result

    async def _dead_letter(self, route: _Route, item: _Item, reason: str, attempts: int) -> None:
        record = item.record
        headers = [
            *(record.headers or []),
            ("dlq-error", reason[:4000].encode()),
            ("dlq-consumer", self.name.encode()),
            ("dlq-attempts", str(attempts).encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
            ("dlq-at", datetime.now(UTC).isoformat().encode()),
        ]
        started = time.perf_counter()
        with (
            tracing.within(record.headers),
            tracing.tracer().start_as_current_span(
                f"dead-letter {route.topic}",
                attributes={
                    "messaging.destination.name": dlq_topic(route.topic),
                    "reason": reason[:500],
                },
            ) as span,
        ):
            item.trace_id = tracing.trace_id_of(span) or item.trace_id
            # Until this succeeds the offset is not committed: the message is never dropped.
            await self._in_fair_weather(
                lambda: self.producer.send_and_wait(
                    self.settings.topic(dlq_topic(route.topic)),
                    value=record.value,
                    key=record.key,
                    headers=headers,
                )
            )
        self._log(route, item, "dead-lettered", attempts, started, reason=reason[:500])
        hook = self.on_dead_letter
        if hook is not None:
            try:
                await self._in_fair_weather(lambda: hook(route.topic, record.value, reason))
            except Exception:  # the message is on the DLQ already; this is a courtesy
                log.exception("dead-letter hook failed", extra=self._ids(item))

    def _log(
        self,
        route: _Route,
        item: _Item,
        outcome: str,
        attempts: int,
        started: float,
        reason: str | None = None,
    ) -> None:
        """One structured line per message handled: what it was about and how it ended."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.metrics.events.labels(route.topic, outcome).inc()
        level = logging.WARNING if outcome == "dead-lettered" else logging.INFO
        log.log(
            level,
            "event handled",
            extra={
                "consumer": self.name,
                "topic": route.topic,
                **self._ids(item),
                "partition": item.record.partition,
                "offset": item.record.offset,
                "outcome": outcome,
                "attempts": attempts,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "reason": reason,
            },
        )


def _kind(route: _Route) -> str:
    return "contact" if route.contacts else "event"


class _Backoff:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... up to `ceiling`."""

    def __init__(self, ceiling: float = 30.0, base: float = 0.5) -> None:
        self.ceiling, self.base, self.attempt = ceiling, base, 0

    def next(self) -> float:
        delay = min(self.ceiling, self.base * 2**self.attempt)
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: IdempotentConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Let running transactions finish and commit before the partitions move.
        await self.consumer._finish_workers(list(revoked), timeout=10)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.consumer._rewind(list(assigned))
        self.consumer.assigned.set()
        log.info(
            "partitions assigned",
            extra={"consumer": self.consumer.name, "partitions": len(assigned)},
        )


def _run_with_broker(broker: KafkaBroker, consumer: IdempotentConsumer) -> None:
    """Start and stop `consumer` with a FastStream broker: FastStream starts and stops every
    subscriber it holds, so the consumer joins them as a subscriber that has no channel of
    its own in the AsyncAPI document (its topics are documented by whoever declares them)."""

    class Lifecycle:
        specification = SimpleNamespace(include_in_schema=False)

        def get_log_context(self, _message: Any) -> dict[str, str]:
            return {}

        async def start(self) -> None:
            await consumer.start()

        async def stop(self) -> None:
            await consumer.stop()

    lifecycle = Lifecycle()
    consumer._broker_lifecycle = lifecycle  # type: ignore[attr-defined]  # the broker holds it weakly
    broker._subscribers.add(lifecycle)  # type: ignore[arg-type]


async def stop_task(task: asyncio.Task[Any], *, timeout: float = 15.0) -> None:
    """Cancel `task` and wait for it, at most `timeout` seconds: a stop must end even when
    something under the task swallows its cancellation (it is cancelled again meanwhile,
    and reported if it still runs)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not task.done():
        task.cancel()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.error("task did not stop when cancelled", extra={"task": task.get_name()})
            return
        await asyncio.wait({task}, timeout=min(1.0, remaining))
    if not task.cancelled() and task.exception() is not None:
        log.warning("task ended with an error", exc_info=task.exception())
