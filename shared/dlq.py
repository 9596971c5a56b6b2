"""Dead-letter queues: list their entries with the reasons, and redrive them.

    make dlq                                  # every entry of every <topic>.dlq, oldest first
    make dlq ARGS="list --topic contacts"     # one topic's DLQ
    make dlq ARGS="redrive --topic position-closed --offset 0:12"   # one entry
    make dlq ARGS="redrive --topic position-closed --all"           # all of that DLQ

Redrive publishes the original record (key, value, headers without the dlq-* ones) to its
original topic, with a `dlq-redriven-from` header. Every consumer of the topic sees it again:
the ones that applied it already find its event id processed (no second effect), the one
that dead-lettered it applies it now, or dead-letters it again with a new reason. A contact
record is not redriven when a newer record of the same party is on the topic: last write
wins there, and the older one would overwrite it.

It reads KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX and the Kafka connection security
(KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*) like the services.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from shared.connections import kafka_client_options
from shared.events.contacts import CONTACTS_TOPIC
from shared.kafka import dlq_topic
from shared.local_stack import unreachable, use_local_stack
from shared.settings import CommonSettings

DLQ_SUFFIX = ".dlq"


@dataclass
class DeadLetter:
    topic: str  # the DLQ topic (full name)
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return ""

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def original_topic(self) -> str:
        return self.header("dlq-original-topic") or self.topic.removesuffix(DLQ_SUFFIX)

    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith("dlq-")]


async def read_all(
    bootstrap: str, topics: Sequence[str], options: dict[str, Any] | None = None
) -> list[DeadLetter]:
    """Every record of `topics`, read without a consumer group (nothing is committed).
    `options`: connection security (shared.connections.kafka_client_options)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(options or {})
    )
    await consumer.start()
    try:
        # Fresh metadata of every topic (the consumer's public topics() returns names only).
        cluster = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(cluster.partitions_for_topic(topic) or [])
        ]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        entries: list[DeadLetter] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                continue
            for tp, records in batch.items():
                entries.extend(
                    DeadLetter(
                        tp.topic,
                        tp.partition,
                        r.offset,
                        r.key,
                        r.value,
                        list(r.headers or []),
                        r.timestamp,
                    )
                    for r in records
                    if r.offset < ends[tp]
                )
        return sorted(entries, key=lambda e: (e.timestamp_ms, e.topic, e.partition, e.offset))
    finally:
        await consumer.stop()


async def dlq_topics(bootstrap: str, settings: CommonSettings, only: str | None) -> list[str]:
    if only:
        return [settings.topic(dlq_topic(only))]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **kafka_client_options(settings))
    await consumer.start()
    try:
        names = await consumer.topics()
    finally:
        await consumer.stop()
    prefix = settings.kafka_topic_prefix
    return sorted(n for n in names if n.endswith(DLQ_SUFFIX) and n.startswith(prefix))


async def redrive(
    bootstrap: str,
    entries: Sequence[DeadLetter],
    *,
    contacts_topic: str,
    options: dict[str, Any] | None = None,
) -> list[tuple[DeadLetter, str]]:
    """Publish each entry back to its original topic; returns (entry, outcome) pairs."""
    outcomes: list[tuple[DeadLetter, str]] = []
    latest = await _latest_offsets_by_key(bootstrap, contacts_topic, entries, options)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, **(options or {})
    )
    await producer.start()
    try:
        for entry in entries:
            target = entry.original_topic
            if target == contacts_topic:
                original = int(entry.header("dlq-original-offset") or -1)
                if latest.get(entry.key, -1) > original:
                    outcomes.append((entry, "skipped: a newer record of this party exists"))
                    continue
            headers = [*entry.original_headers(), ("dlq-redriven-from", _origin(entry))]
            metadata = await producer.send_and_wait(
                target, key=entry.key, value=entry.value, headers=headers
            )
            outcomes.append((entry, f"redriven to {target} {metadata.partition}:{metadata.offset}"))
    finally:
        await producer.stop()
    return outcomes


def _origin(entry: DeadLetter) -> bytes:
    return f"{entry.topic}/{entry.partition}/{entry.offset}".encode()


async def _latest_offsets_by_key(
    bootstrap: str,
    contacts_topic: str,
    entries: Sequence[DeadLetter],
    options: dict[str, Any] | None = None,
) -> dict[bytes | None, int]:
    if not any(e.original_topic == contacts_topic for e in entries):
        return {}
    latest: dict[bytes | None, int] = {}
    for record in await read_all(bootstrap, [contacts_topic], options):
        latest[record.key] = max(latest.get(record.key, -1), record.offset)
    return latest


def describe(entry: DeadLetter) -> str:
    at = datetime.fromtimestamp(entry.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
    key = entry.key.decode(errors="replace") if entry.key else "-"
    return (
        f"{entry.topic} {entry.position}  {at}  key={key}\n"
        f"    consumer={entry.header('dlq-consumer')} attempts={entry.header('dlq-attempts')} "
        f"from {entry.original_topic} "
        f"{entry.header('dlq-original-partition')}:{entry.header('dlq-original-offset')}"
        + (
            f" (redriven before from {entry.header('dlq-redriven-from')})"
            if entry.header("dlq-redriven-from")
            else ""
        )
        + f"\n    reason: {entry.header('dlq-error')}"
    )


async def main(argv: Sequence[str] | None = None, out: Any = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="make dlq", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    listing = sub.add_parser("list", help="list DLQ entries with their reasons (the default)")
    listing.add_argument("--topic", help="the original topic, e.g. position-closed")
    listing.add_argument("--consumer", help="only entries dead-lettered by this service")
    again = sub.add_parser("redrive", help="publish DLQ entries back to their original topic")
    again.add_argument("--topic", required=True, help="the original topic, e.g. contacts")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", action="append", help="PARTITION:OFFSET in the DLQ")
    which.add_argument("--all", action="store_true", help="every entry of that DLQ")
    again.add_argument("--consumer", help="only entries dead-lettered by this service")
    args = parser.parse_args(argv)

    settings = CommonSettings()
    bootstrap = settings.kafka_bootstrap_servers
    options = kafka_client_options(settings)
    entries = await read_all(bootstrap, await dlq_topics(bootstrap, settings, args.topic), options)
    if args.consumer:
        entries = [e for e in entries if e.header("dlq-consumer") == args.consumer]
    if args.command in (None, "list"):
        for entry in entries:
            print(describe(entry), file=out)
        print(f"{len(entries)} dead-lettered record(s)", file=out)
        return 0
    if not args.all:
        wanted = set(args.offset)
        entries = [e for e in entries if e.position in wanted]
        missing = wanted - {e.position for e in entries}
        if missing:
            print(f"no such DLQ entries: {', '.join(sorted(missing))}", file=out)
            return 1
    outcomes = await redrive(
        bootstrap, entries, contacts_topic=settings.topic(CONTACTS_TOPIC), options=options
    )
    for entry, outcome in outcomes:
        print(f"{entry.topic} {entry.position}: {outcome}", file=out)
    print(f"{sum(o.startswith('redriven') for _, o in outcomes)} record(s) redriven", file=out)
    return 0


def run() -> int:
    """`make dlq`: on the stack `make run` started (its ports), one line if it is not there."""
    use_local_stack()
    try:
        return asyncio.run(main())
    except KafkaConnectionError:
        where = CommonSettings().kafka_bootstrap_servers
        print(unreachable("Kafka", where), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
