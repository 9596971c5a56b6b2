"""Kafka helpers: topics and their configuration, the recovering idempotent producer, the
idle-fetch pause, and the DLQ naming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

log = logging.getLogger(__name__)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
DAY_MS = 24 * 3600 * 1000

# The producer's own state (producer id, epoch, sequence numbers) no longer matches the
# broker's: after a broker restart that forgot it, or when another producer fenced this one.
# aiokafka does not recover from these by itself; a new producer does.
PRODUCER_STATE_ERRORS: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
    ProducerClosed,
)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that say Kafka is unreachable or busy (bad weather)."""
    return isinstance(exc, KafkaError | TimeoutError | ConnectionError | OSError)


@dataclass(frozen=True)
class TopicPolicy:
    """How the topics are configured: what the code wants, not what the broker defaults to
    (Apache Kafka deletes after 7 days by default, which would break replay from offset 0)."""

    partitions: int = 3
    replication: int = 1
    # Event topics and their DLQs keep everything: every consumer may replay from offset 0.
    retention_ms: int = -1
    # Compacted topics (contacts): a superseded or erased record is compacted away within
    # max_compaction_lag_ms, and a tombstone itself is dropped delete_retention_ms later.
    max_compaction_lag_ms: int = DAY_MS // 2
    delete_retention_ms: int = DAY_MS // 2

    def configs(self, compacted: bool) -> dict[str, str]:
        if compacted:
            return {
                "cleanup.policy": "compact",
                "max.compaction.lag.ms": str(self.max_compaction_lag_ms),
                "delete.retention.ms": str(self.delete_retention_ms),
            }
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication: int,
    compacted: frozenset[str] = frozenset(),
    policy: TopicPolicy | None = None,
    client_options: dict[str, Any] | None = None,
) -> TopicReport:
    """Create missing topics (and their DLQs) with the configuration the code owns; report
    existing topics whose configuration differs (they are not altered: that is an operator's
    decision, e.g. `kafka-configs.sh --alter`)."""
    policy = policy or TopicPolicy(partitions=partitions, replication=replication)
    wanted: dict[str, tuple[int, dict[str, str]]] = {}
    for topic in topics:
        is_compacted = topic in compacted
        # The contacts topic is keyed by party; one partition keeps it simple to compact.
        wanted[topic] = (1 if is_compacted else partitions, policy.configs(is_compacted))
        # A DLQ keeps everything, also for a compacted topic: each entry is evidence.
        wanted.setdefault(dlq_topic(topic), (partitions, policy.configs(False)))
    report = TopicReport()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, count, replication, topic_configs=configs)
            for name, (count, configs) in wanted.items()
            if name not in existing
        ]
        if new:
            # Errors per topic (e.g. another service created it first) come back in the
            # response rather than raised; "already exists" is what we wanted anyway.
            response = await admin.create_topics(new)
            for topic, code, message in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise RuntimeError(f"could not create topic {topic}: {message}")
            report.created = [t.name for t in new]
            log.info("topics created", extra={"topics": report.created})
        report.mismatches = await _config_mismatches(
            admin, {n: wanted[n][1] for n in wanted if n in existing}
        )
    finally:
        await admin.close()
    for line in report.mismatches:
        log.warning("topic configuration differs from what the code wants: " + line)
    return report


async def _config_mismatches(
    admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]]
) -> list[str]:
    if not wanted:
        return []
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
    found: dict[str, dict[str, str]] = {}
    try:
        for response in await admin.describe_configs(resources):
            for _code, _message, _type, name, entries in response.resources:
                found[name] = {entry[0]: entry[1] for entry in entries}
    except KafkaError as exc:
        return [f"could not read topic configurations: {exc!r}"]
    lines = []
    for name, configs in sorted(wanted.items()):
        actual = found.get(name, {})
        for key, value in configs.items():
            if actual.get(key) != value:
                lines.append(
                    f"{name}: {key}={actual.get(key)} on the broker, the code wants {value}"
                )
    return lines


class IdempotentProducer:
    """An aiokafka producer with idempotence on, created when started (aiokafka needs the
    running event loop at construction), and recreated when its producer state is lost."""

    def __init__(
        self, bootstrap: str, client_id: str, options: dict[str, Any] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        # Connection security (shared.connections.kafka_client_options), also used by the
        # clients that read back what this producer wrote (the outbox verifier).
        self.options = dict(options or {})
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self.recreated = 0

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            enable_idempotence=True,  # implies acks=all; no duplicates from producer retries
            linger_ms=5,
            request_timeout_ms=15_000,
            **self.options,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), timeout=10)
            except Exception as exc:  # a broken producer may not stop cleanly
                log.warning("producer did not stop cleanly", extra={"error": repr(exc)})

    async def recreate(self, reason: BaseException | str) -> None:
        """Replace the producer with a new one (new producer id, sequences from zero)."""
        async with self._lock:
            log.warning("recreating the Kafka producer", extra={"reason": repr(reason)[:300]})
            await self.stop()
            await self.start()
            self.recreated += 1

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue a record; await the returned future for the broker's acknowledgement."""
        return await self.producer.send(topic, **kwargs)

    async def send_and_wait(self, topic: str, **kwargs: Any) -> Any:
        try:
            return await self.producer.send_and_wait(topic, **kwargs)
        except PRODUCER_STATE_ERRORS as exc:
            await self.recreate(exc)
            raise


class FetchPacer:
    """The pause of `hold_empty_fetches`, which the consumer's owner resets when work moves
    (records handed out, a partition resumed after its batch was applied): the next fetch
    then goes out at once instead of at the end of a pause grown while it was busy."""

    def __init__(self, seconds: float, longest: float) -> None:
        self.seconds = seconds
        self.longest = max(seconds, longest)
        self.empty_in_a_row = 0
        self.moves = 0  # how often work moved: a fetch that went out before a move is stale
        self._moved = asyncio.Event()

    def busy(self) -> None:
        self.empty_in_a_row = 0
        self.moves += 1
        self._moved.set()

    async def pause(self, since: int | None = None) -> None:
        """Wait after an empty fetch: `seconds`, doubled after each further one up to
        `longest`, cut short by `busy()`. No wait if work moved after `since` (the `moves`
        seen when the fetch went out): that fetch did not ask for what is waiting now."""
        if since is not None and since != self.moves:
            return
        wait = min(self.longest, self.seconds * 2 ** min(self.empty_in_a_row, 16))
        self.empty_in_a_row += 1
        self._moved.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._moved.wait()


def hold_empty_fetches(
    consumer: AIOKafkaConsumer, seconds: float, longest: float | None = None
) -> FetchPacer | None:
    """Make an idle consumer wait after a fetch that came back empty early: `seconds` after
    the first, twice as long after each further one, at most `longest`; data, or the
    returned pacer's `busy()`, starts again from `seconds`. None when `seconds` is 0.

    Apache Kafka holds an empty fetch for `fetch_max_wait_ms`; a broker that answers at once
    (the embedded noida-db does, in ~0.4 ms) turns every idle consumer into a busy loop of
    ~1,000 fetches/s (20 % of a core each, measured). aiokafka has no setting for a client-side
    pause, so this wraps its fetch step (aiokafka 0.14, pinned): a node with a fetch in
    flight gets no new fetch, so the pause spaces fetches out. Growing it keeps a consumer
    quick while traffic flows and nearly silent when there is none (one fetch costs about
    1 ms of CPU here). A fetch that took at least half of `fetch_max_wait_ms` (a broker that
    holds fetches) is not paused.

    When work moved while a fetch was out (a partition resumed, records handed out), the
    fetch routine is woken once more after the fetch's task is done. Without it, the routine
    could be woken (by the resume) in the same turn as the task ends, look at its partitions
    before the task's done-callback has cleared the broker's in-flight mark, find nothing it
    may fetch, and sleep its whole `consumer_timeout_ms` (200 ms). Measured: 200 ms between a
    partition's batches; consumer throughput 0.56 of the raw baseline, 0.80 without it.
    """
    if seconds <= 0:
        return None
    pacer = FetchPacer(seconds, longest or seconds)
    fetcher = consumer._fetcher
    original = fetcher._proc_fetch_request
    held_ms = consumer._fetch_max_wait_ms / 2

    def wake_routine(_: object) -> None:
        # The routine's consume signal, which aiokafka sets itself when records are taken.
        fetcher._notify(fetcher._wait_consume_future)

    async def fetch_then_pause(assignment: Any, node_id: int, request: Any, moves: int) -> bool:
        started = time.monotonic()
        has_data: bool = await original(assignment, node_id, request)
        moved = pacer.moves != moves
        if has_data:
            pacer.busy()
        elif (time.monotonic() - started) * 1000 < held_ms:
            try:
                await pacer.pause(since=moves)
            except asyncio.CancelledError:
                return False  # the assignment changed or the consumer stops
            moved = pacer.moves != moves
        task = asyncio.current_task()
        if moved and task is not None:
            # Runs after aiokafka's own done-callback (added when it made the task), which
            # clears the in-flight mark: the routine then sees what it may fetch.
            task.add_done_callback(wake_routine)
        return has_data

    def fetch(assignment: Any, node_id: int, request: Any) -> Coroutine[Any, Any, bool]:
        # Not a coroutine function: `moves` is read as aiokafka builds the request, not a
        # loop turn later when its task first runs (a resume in between would be missed).
        return fetch_then_pause(assignment, node_id, request, pacer.moves)

    fetcher._proc_fetch_request = fetch
    return pacer


class OffsetsReader:
    """End offsets of topics and a consumer group's committed offsets, for the metrics
    (consumer lag, DLQ sizes). Its clients join no group and commit nothing; they are made
    on first use and kept."""

    def __init__(self, bootstrap: str, client_id: str, options: dict[str, Any] | None = None):
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.options = dict(options or {})
        self._reader: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        async with self._lock:
            if self._reader is None:
                reader = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    client_id=self.client_id,
                    group_id=None,
                    enable_auto_commit=False,
                    request_timeout_ms=10_000,
                    **self.options,
                )
                await reader.start()
                self._reader = reader
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap, client_id=self.client_id, **self.options
                )
                await admin.start()
                self._admin = admin
            return self._reader, self._admin

    async def _partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        reader, _ = await self._clients()
        # Fresh metadata (the consumer's own covers only what it was told about).
        cluster = await reader._client.fetch_all_metadata()
        return [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]

    async def sizes(self, topics: dict[str, str]) -> dict[str, int]:
        """Records in each topic (full name -> label): end minus beginning offsets."""
        reader, _ = await self._clients()
        tps = await self._partitions(topics)
        sizes = dict.fromkeys(topics.values(), 0)
        if not tps:
            return sizes
        ends = await reader.end_offsets(tps)
        starts = await reader.beginning_offsets(tps)
        for tp in tps:
            sizes[topics[tp.topic]] += max(0, ends[tp] - starts[tp])
        return sizes

    async def group_lag(self, group: str, topics: dict[str, str]) -> dict[str, int]:
        """Records of each topic (full name -> label) past the group's committed offsets;
        a partition the group never committed counts from its beginning."""
        reader, admin = await self._clients()
        tps = await self._partitions(topics)
        lag = dict.fromkeys(topics.values(), 0)
        if not tps:
            return lag
        ends = await reader.end_offsets(tps)
        starts = await reader.beginning_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        for tp in tps:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag[topics[tp.topic]] += max(0, ends[tp] - position)
        return lag

    async def close(self) -> None:
        reader, admin = self._reader, self._admin
        self._reader = self._admin = None
        if reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout=5)
        if admin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.close(), timeout=5)
