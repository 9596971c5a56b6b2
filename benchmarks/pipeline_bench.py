"""Event pipeline benchmark on the embedded stack: each figure beside a baseline doing the
same work on the same servers in the same run (the machine is shared, so the ratios are
what count).

    make bench-pipeline                      (defaults; 6-8 min on a loaded 2-core machine)
    .venv/bin/python benchmarks/pipeline_bench.py --reps 3 --events 1000 --contacts 1000 --mails 400

Stages, ours and its baseline interleaved (A B A B ...):
- consumer: the matching service's real consumer (its app, in this process) applies
  `--events` pre-produced `application-submitted` events; baseline: raw aiokafka with one
  MongoDB transaction per poll batch (processed ids filtered with one query and inserted with
  one insert_many, the read-model upserts as one bulk_write: the writes matching does).
- contacts: the notifications service (its app, in this process) keeps `--contacts`
  pre-produced contact records; baseline: raw aiokafka, one transaction per poll batch with
  the same writes (one bulk_write of upserts, one delete of erasure markers).
- delivery: the notifications service's real sender (`build_deliverer`) delivers `--mails`
  planned messages; baseline: raw aiosmtplib over one reused connection delivering the same
  messages the simplest correct way (the due messages and their facts read once; each
  message composed, sent and marked sent, one after another; no claim, less database work
  than ours). References: the same sender writing its marks 50 at a time; and, with no
  database at all, the same mails composed beforehand and sent over one connection (what
  SMTP and the sink alone allow).
Then, once each:
- at 1k and 20k stored (sent) messages: the claim of a batch (alone, and with 100 others in
  flight) beside the single-message claim it replaced, and the recording of a batch;
- submit -> e-mail latency at `--rate` applications/s through the three services started
  as processes (as `make run` does), from the POST to the sink's receipt;
- idle CPU of each service process over `--idle-seconds` of /proc CPU time.

It ends with these lines (the format is checked):
    consumer ratio vs raw batched: R
    delivery ratio vs raw smtp: R
    e2e p99 ms at 5/s: N
    idle cpu % max service: N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import ASCENDING, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from deploy.embedded.processes import Child, free_port, spawn
from deploy.embedded.servers import EmbeddedServers
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.matching.store import PROFILE_FIELDS
from services.notifications.app import NotificationsSettings, build_deliverer
from services.notifications.app import create_app as create_notifications
from services.notifications.compose import compose
from services.notifications.domain import plan
from services.notifications.rendering import Renderer, Site
from services.notifications.store import NotificationsStore
from shared.consumer import PROCESSED
from shared.documents import utcnow
from shared.events import ApplicationSubmitted, ContactRecord, make_event, parse_event
from shared.events.vocabulary import Language
from shared.kafka import IdempotentProducer, ensure_topics
from shared.logs import configure_logging
from shared.mongo import Session, connect, in_transaction
from shared.settings import CommonSettings
from tests.driver import ApplicationsDriver
from tests.infra import Infra

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONSUMER_BATCH = CommonSettings.model_fields["consumer_batch_size"].default
LANGUAGES = ("zh-TW", "ja", "en")


def say(text: str) -> None:
    print(text, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Stack:
    servers: EmbeddedServers
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def kafka(self) -> str:
        return self.servers.kafka_bootstrap

    @property
    def mongo(self) -> str:
        return self.servers.mongodb_uri

    def tag(self, stage: str) -> str:
        return f"b{stage}{uuid.uuid4().hex[:6]}"

    def settings(self, cls: type[Any], tag: str, **values: Any) -> Any:
        return cls(
            kafka_bootstrap_servers=self.kafka,
            mongodb_uri=self.mongo,
            kafka_topic_prefix=f"{tag}.",
            kafka_group_prefix=f"{tag}.",
            jwt_secret=self.jwt_secret,
            smtp_host=self.servers.host,
            smtp_port=self.servers.smtp_port,
            **values,
        )


async def wait_for_count(
    count: Callable[[], Awaitable[int]], total: int, timeout: float, label: str
) -> None:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while (done := await count()) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: only {done}/{total} after {timeout:.0f} s")
        if time.monotonic() - last_report > 10:
            say(f"      ... {label}: {done}/{total}")
            last_report = time.monotonic()
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ consumer stage


def application(n: int, cohort: str) -> ApplicationSubmitted:
    return ApplicationSubmitted(
        application_id=f"app-{cohort}-{n}",
        cohort_id=cohort,
        student_id=f"stu-{cohort}-{n}",
        ranked_position_ids=[f"pos-{n % 17}", f"pos-{(n + 5) % 17}"],
        department="Electrical Engineering",
        degree_program="master",
        graduation_year=2028,
        jlpt_level="N2",
        english_level="B2",
        skills=["python", "c"],
        available_from=date(2027, 6, 15),
        available_to=date(2027, 9, 15),
        consent_to_data_use=True,
        submitted_at=datetime.now(UTC),
    )


class Source:
    """Produces records for one run onto its own topic; `record(n)` says what the n-th is."""

    def __init__(self, stack: Stack, topic: str) -> None:
        self.stack = stack
        self.topic = topic
        self.produced = 0
        self.producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, linger_ms=5)

    def record(self, n: int) -> dict[str, Any]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await ensure_topics(self.stack.kafka, [self.topic], partitions=3, replication=1)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def produce(self, count: int) -> None:
        futures = []
        for n in range(self.produced, self.produced + count):
            futures.append(await self.producer.send(self.topic, **self.record(n)))
        self.produced += count
        await asyncio.gather(*futures)


class Applications(Source):
    """`application-submitted` events."""

    def __init__(self, stack: Stack, tag: str) -> None:
        super().__init__(stack, f"{tag}.application-submitted")
        self.cohort = tag

    def record(self, n: int) -> dict[str, Any]:
        data = application(n, self.cohort)
        event = make_event(data, source="/bench", subject=data.key)
        return {"value": event.to_bytes(), "key": data.key.encode()}


async def consumer_rate(
    applications: Source, applied: Callable[[], Awaitable[int]], count: int, label: str
) -> float:
    """Events per second from the first produced to the last applied, the consumer having
    shown it is live (joined, partitions assigned) by applying one event first."""
    await applications.produce(1)
    await wait_for_count(applied, 1, 300, f"{label} start")
    started = time.monotonic()
    await applications.produce(count)
    await wait_for_count(applied, count + 1, 900, label)
    return count / (time.monotonic() - started)


async def our_consumer(stack: Stack, count: int) -> float:
    """The matching service as it runs (its app and lifespan, in this process): the rate is
    that of its real consumer path, from the poll to the committed transaction."""
    tag = stack.tag("c")
    settings = stack.settings(MatchingSettings, tag, database=f"{tag}_matching")
    app = create_matching(settings)
    db = app.state.runtime.db
    async with Applications(stack, tag) as applications, app.router.lifespan_context(app):
        rate = await consumer_rate(
            applications, db[PROCESSED].estimated_document_count, count, "matching"
        )
    await drop(stack, db.name)
    return rate


async def raw_consumer(stack: Stack, count: int) -> float:
    """Raw aiokafka, one transaction per poll batch, the writes matching does: processed ids
    filtered with one query and inserted with one insert_many, the applications as one
    bulk_write of upserts, the students' newest profile facts read with one query and written
    with one bulk_write."""
    tag = stack.tag("r")
    client = connect(stack.mongo)
    db = client[f"{tag}_matching"]

    async def apply(records: list[Any]) -> None:
        events = [parse_event(r.value, expected="application-submitted") for r in records]
        keys = [f"matching:{e.id}" for e in events]

        async def work(session: Session) -> None:
            seen = {
                d["_id"]
                async for d in db[PROCESSED].find(
                    {"_id": {"$in": keys}}, {"_id": 1}, session=session
                )
            }
            fresh = [(k, e) for k, e in zip(keys, events, strict=True) if k not in seen]
            if not fresh:
                return
            now = datetime.now(UTC)
            facts = [e.data.model_dump(mode="json", exclude={"application_id"}) for _, e in fresh]
            await db["applications"].bulk_write(
                [
                    UpdateOne(
                        {"_id": e.data.application_id},
                        {"$set": f, "$setOnInsert": {"state": "active"}},
                        upsert=True,
                    )
                    for (_, e), f in zip(fresh, facts, strict=True)
                ],
                ordered=True,
                session=session,
            )
            newest: dict[str, dict[str, Any]] = {}
            for f in facts:
                known = newest.get(f["student_id"])
                if known is None or known["as_of"] < f["submitted_at"]:
                    profile = {k: f[k] for k in PROFILE_FIELDS}
                    newest[f["student_id"]] = profile | {"as_of": f["submitted_at"]}
            current = {
                d["_id"]: d["as_of"]
                async for d in db["students"].find(
                    {"_id": {"$in": list(newest)}}, {"as_of": 1}, session=session
                )
            }
            replace = [
                ReplaceOne({"_id": sid}, {"_id": sid, **profile}, upsert=True)
                for sid, profile in newest.items()
                if sid not in current or current[sid] < profile["as_of"]
            ]
            if replace:
                await db["students"].bulk_write(replace, ordered=False, session=session)
            await db[PROCESSED].insert_many(
                [
                    {"_id": k, "consumer": "matching", "event_id": str(e.id), "type": e.type}
                    | {"processed_at": now}
                    for k, e in fresh
                ],
                session=session,
            )

        await in_transaction(client, work)

    try:
        async with Applications(stack, tag) as applications:
            rate = await raw_rate(
                stack, applications, apply, db[PROCESSED].estimated_document_count, count, "raw"
            )
    finally:
        await client.close()
    await drop(stack, db.name)
    return rate


async def raw_rate(
    stack: Stack,
    source: Source,
    apply: Callable[[list[Any]], Awaitable[None]],
    applied: Callable[[], Awaitable[int]],
    count: int,
    label: str,
) -> float:
    """`consumer_rate` of a raw aiokafka loop: `apply` takes each partition's poll (one
    transaction each), as many records per poll as the services take (CONSUMER_BATCH_SIZE),
    and the offsets are committed after each poll."""
    consumer = AIOKafkaConsumer(
        source.topic,
        bootstrap_servers=stack.kafka,
        group_id=f"{source.topic}.raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()

    async def consume() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=CONSUMER_BATCH)
            for records in batch.values():
                await apply(records)
            if batch:
                await consumer.commit()

    task = asyncio.create_task(consume())
    try:
        return await consumer_rate(source, applied, count, label)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def drop(stack: Stack, database: str) -> None:
    client = connect(stack.mongo)
    await client.drop_database(database)
    await client.close()


# ------------------------------------------------------------------ contacts stage


class Contacts(Source):
    """Contact records (as the applications service's outbox relay publishes them) on the
    restricted contacts topic."""

    def record(self, n: int) -> dict[str, Any]:
        contact = ContactRecord(
            party_id=f"stu-{self.topic.split('.')[0]}-{n}",
            party_type="student",
            name=f"學生 {n}",
            email=f"stu-{n}@example.tw",
            preferred_language=Language(LANGUAGES[n % 3]),
        )
        return {
            "value": contact.model_dump_json().encode(),
            "key": contact.key.encode(),
            "headers": [("content-type", b"application/json")],
        }


async def our_contacts(stack: Stack, count: int) -> float:
    """The notifications service as it runs (its app and lifespan, in this process) keeping
    its private copy of `count` contacts."""
    tag = stack.tag("k")
    settings = stack.settings(NotificationsSettings, tag, database=f"{tag}_notifications")
    app = create_notifications(settings)
    db = app.state.store.db
    async with app.router.lifespan_context(app), Contacts(stack, settings.topic("contacts")) as c:
        rate = await consumer_rate(c, db["contacts"].estimated_document_count, count, "contacts")
    await drop(stack, db.name)
    return rate


async def raw_contacts(stack: Stack, count: int) -> float:
    """Raw aiokafka, one transaction per poll batch with the writes the service makes: the
    contacts upserted with one bulk_write, their erasure markers removed with one delete."""
    tag = stack.tag("l")
    client = connect(stack.mongo)
    db = client[f"{tag}_notifications"]

    async def apply(records: list[Any]) -> None:
        contacts = [ContactRecord.model_validate_json(r.value) for r in records]

        async def work(session: Session) -> None:
            await db["contacts"].bulk_write(
                [
                    ReplaceOne({"_id": c.key}, {"_id": c.key, **c.model_dump(mode="json")}, True)
                    for c in contacts
                ],
                ordered=True,
                session=session,
            )
            keys = [c.key for c in contacts]
            await db["erasures"].delete_many({"_id": {"$in": keys}}, session=session)

        await in_transaction(client, work)

    try:
        async with Contacts(stack, f"{tag}.contacts") as contacts:
            counted = db["contacts"].estimated_document_count
            rate = await raw_rate(stack, contacts, apply, counted, count, "raw contacts")
    finally:
        await client.close()
    await drop(stack, db.name)
    return rate


# ------------------------------------------------------------------ delivery stage


async def planned_mails(stack: Stack, tag: str, count: int) -> NotificationsStore:
    """`count` confirmations of a submitted application, to students with a contact each,
    planned as the notifications service plans them."""
    client = connect(stack.mongo)
    store = NotificationsStore(client[f"{tag}_notifications"])
    await store.ensure_indexes()
    for start in range(0, count, 100):
        chunk = range(start, min(start + 100, count))

        async def work(session: Session, chunk: range = chunk) -> None:
            for n in chunk:
                data = application(n, tag)
                contact = ContactRecord(
                    party_id=data.student_id,
                    party_type="student",
                    name=f"學生 {n}",
                    email=f"{data.student_id}@example.tw",
                    preferred_language=Language(LANGUAGES[n % 3]),
                )
                await store.upsert_contacts(session, [contact])
                event = make_event(data, source="/bench", subject=data.key)
                await store.plan_messages(session, event, "application-submitted", plan(event))

        await in_transaction(client, work)
    return store


async def our_delivery(stack: Stack, count: int) -> float:
    tag = stack.tag("d")
    store = await planned_mails(stack, tag, count)
    settings = stack.settings(NotificationsSettings, tag)
    producer = IdempotentProducer(stack.kafka, "bench")  # the DLQ's; unused when all goes well
    await producer.start()
    deliverer = build_deliverer(settings, store, producer)
    try:
        started = time.perf_counter()
        handled = await deliverer.deliver_due()
        elapsed = time.perf_counter() - started
    finally:
        await deliverer.mailer.close()
        await producer.stop()
    sent = await store.messages.count_documents({"status": "sent"})
    if handled != count or sent != count:
        raise RuntimeError(f"our delivery: handled {handled}, sent {sent} of {count}")
    await store.db.client.close()
    await drop(stack, store.db.name)
    return count / elapsed


async def raw_sender(stack: Stack, count: int, bulk: int = 1) -> float:
    """The baseline the issue names: raw aiosmtplib over one reused connection, delivering
    the same planned messages the simplest correct way. It reads the due messages and their
    facts once, then composes each message, sends it and marks it sent in the message log
    (after the SMTP server took it: at least once), one mail after another; with `bulk` > 1
    the marks are written `bulk` at a time. It does less database work than ours (no claim
    or lease, no check that a message is still wanted), and no concurrency."""
    tag = stack.tag("s")
    store = await planned_mails(stack, tag, count)
    settings = stack.settings(NotificationsSettings, tag)
    site = Site(settings.public_base_url, settings.contact_email)
    renderer = Renderer()
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port)
    marks: list[UpdateOne] = []
    started = time.perf_counter()
    await smtp.connect()
    due = (
        await store.messages.find({"status": "pending", "next_attempt_at": {"$lte": utcnow()}})
        .sort("next_attempt_at", ASCENDING)
        .to_list()
    )
    facts = await store.facts_for(due)
    for n, message in enumerate(due, start=1):
        mail = compose(message, facts, renderer, sender=settings.mail_from, site=site)
        envelope = mail.envelope
        await smtp.send_message(mail.email, sender=envelope.sender, recipients=envelope.recipients)
        sent_fields = {
            "status": "sent",
            "sent_at": utcnow(),
            "to": mail.to,
            "subject": mail.subject,
            "body": mail.body,
            "language": mail.language,
            "message_header_id": mail.email["Message-ID"],
            "last_error": None,
        }
        if bulk == 1:
            await store.messages.update_one({"_id": message["_id"]}, {"$set": sent_fields})
            continue
        marks.append(UpdateOne({"_id": message["_id"]}, {"$set": sent_fields}))
        if len(marks) == bulk or n == len(due):
            await store.messages.bulk_write(marks, ordered=False)
            marks = []
    elapsed = time.perf_counter() - started
    await smtp.quit()
    sent = await store.messages.count_documents({"status": "sent"})
    if len(due) != count or sent != count:
        raise RuntimeError(f"raw sender: {len(due)} due, {sent} sent of {count}")
    await store.db.client.close()
    await drop(stack, store.db.name)
    return count / elapsed


async def smtp_alone(stack: Stack, count: int) -> float:
    """A reference, not a baseline: the same mails, composed beforehand, sent over one
    connection with no database at all (what SMTP and the sink alone allow)."""
    tag = stack.tag("a")
    store = await planned_mails(stack, tag, count)
    messages = await store.messages.find().to_list()
    facts = await store.facts_for(messages)
    settings = stack.settings(NotificationsSettings, tag)
    site = Site(settings.public_base_url, settings.contact_email)
    renderer = Renderer()
    mails = [compose(m, facts, renderer, sender=settings.mail_from, site=site) for m in messages]
    await store.db.client.close()
    await drop(stack, store.db.name)
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port)
    started = time.perf_counter()
    await smtp.connect()
    for mail in mails:
        envelope = mail.envelope
        await smtp.send_message(mail.email, sender=envelope.sender, recipients=envelope.recipients)
    elapsed = time.perf_counter() - started
    await smtp.quit()
    return count / elapsed


# ------------------------------------------------------------------ claim query


IN_FLIGHT = 100  # messages being sent while the next batch is claimed


async def claim_times(
    stack: Stack, sizes: list[int], due: int, tries: int
) -> dict[int, dict[str, float]]:
    """Median times (ms), with `sizes` sent messages in the log, of what the sender asks of
    the message log per batch, beside the query shapes they replaced:
    - claim: `due` due messages (ours) / the old single-message claim;
    - claim_ahead: the same with IN_FLIGHT other due messages in flight (the next batch is
      claimed while one is being sent);
    - record: the batch's outcomes (one transaction)."""
    client = connect(stack.mongo)
    db = client[stack.tag("q") + "_notifications"]
    store = NotificationsStore(db)
    await store.ensure_indexes()
    stored = 0
    results: dict[int, dict[str, float]] = {}
    body = "恭喜您完成申請。" * 40
    lease = timedelta(minutes=5)
    for size in sizes:
        while stored < size:
            n = min(1000, size - stored)
            await db["messages"].bulk_write(
                [InsertOne(sent_message(stored + i, body)) for i in range(n)], ordered=False
            )
            stored += n
        say(f"    {size} sent messages stored")
        times: dict[str, list[float]] = {}

        def took(name: str, started: float, times: dict[str, list[float]] = times) -> None:
            times.setdefault(name, []).append(time.perf_counter() - started)

        for _ in range(tries):
            await make_due(db, due)
            started = time.perf_counter()
            claimed = await store.claim_due(datetime.now(UTC) + lease, limit=due)
            took("claim", started)
            assert len(claimed) == due, len(claimed)
            outcomes = [(m, {"status": "sent", "sent_at": datetime.now(UTC)}) for m in claimed]
            started = time.perf_counter()
            assert await store.record(outcomes) == due
            took("record", started)

            await make_due(db, due + IN_FLIGHT)
            flying = frozenset(f"due-{i}" for i in range(IN_FLIGHT))
            started = time.perf_counter()
            claimed = await store.claim_due(datetime.now(UTC) + lease, limit=due, excluding=flying)
            took("claim_ahead", started)
            assert len(claimed) == due and not flying & {m["_id"] for m in claimed}

            await make_due(db, due)
            started = time.perf_counter()
            await old_claim(db)
            took("old_claim", started)
        results[size] = {k: statistics.median(v) * 1000 for k, v in times.items()}
        r = results[size]
        say(
            f"    claim of {due}: {r['claim']:.1f} ms (old single-message claim "
            f"{r['old_claim']:.1f}); with {IN_FLIGHT} in flight: {r['claim_ahead']:.1f} ms; "
            f"record: {r['record']:.1f} ms"
        )
        await db["messages"].delete_many({"_id": {"$regex": "^due-"}})
    await client.drop_database(db.name)
    await client.close()
    return results


def sent_message(n: int, body: str) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=n)
    return {
        "_id": f"evt-{n}:stu-{n}",
        "event_id": f"evt-{n}",
        "event_type": "jp.kitakyushu.internship.application-submitted.v1",
        "topic": "application-submitted",
        "event_json": "{" + "x" * 900 + "}",
        "data": {"application_id": f"app-{n}", "student_id": f"stu-{n}"},
        "cohort_id": "2026-summer",
        "recipient_id": f"stu-{n}",
        "recipient_kind": "student",
        "template": "application_submitted.student",
        "about": [],
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": at,
        "created_at": at,
        "sent_at": at,
        "to": f"學生 <stu-{n}@example.tw>",
        "subject": "已收到您的申請",
        "body": body,
        "language": "zh-TW",
    }


async def make_due(db: AsyncDatabase[dict[str, Any]], due: int) -> None:
    await db["messages"].delete_many({"_id": {"$regex": "^due-"}})
    now = datetime.now(UTC)
    await db["messages"].insert_many(
        [
            {"_id": f"due-{i}", "status": "pending", "next_attempt_at": now, "attempts": 0}
            | {"recipient_id": f"stu-due-{i}", "data": {}, "about": []}
            for i in range(due)
        ]
    )


async def old_claim(db: AsyncDatabase[dict[str, Any]]) -> None:
    """The claim of one message before this change, for comparison."""
    now = datetime.now(UTC)
    await db["messages"].find_one_and_update(
        {"status": {"$in": ["pending", "sending"]}, "next_attempt_at": {"$lte": now}},
        {"$set": {"status": "sending", "next_attempt_at": now + timedelta(minutes=5)}},
        sort=[("next_attempt_at", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )


# ------------------------------------------------------------------ e2e latency and idle CPU

SERVICES = ("applications", "matching", "notifications")


@dataclass
class Services:
    children: dict[str, Child]
    ports: dict[str, int]
    databases: dict[str, str]

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()


async def start_services(stack: Stack, logs: Path) -> Services:
    tag = stack.tag("e")
    ports = {name: free_port() for name in SERVICES}
    databases = {name: f"{tag}_{name}" for name in SERVICES}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "MONGODB_URI": stack.mongo,
        "SMTP_HOST": stack.servers.host,
        "SMTP_PORT": str(stack.servers.smtp_port),
        "JWT_SECRET": stack.jwt_secret,
        "HTTP_HOST": stack.servers.host,
        "KAFKA_TOPIC_PREFIX": f"{tag}.",
        "KAFKA_GROUP_PREFIX": f"{tag}.",
        **{f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()},
        **{f"{name.upper()}_DATABASE": db for name, db in databases.items()},
    }
    children = {
        name: spawn(name, [sys.executable, "-m", f"services.{name}"], logs / f"{name}.log", env)
        for name in SERVICES
    }
    services = Services(children, ports, databases)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for name, child in children.items():
                url = f"http://{stack.servers.host}:{ports[name]}/health/ready"
                deadline = time.monotonic() + 120
                while True:
                    if not child.alive():
                        raise RuntimeError(f"{name} exited at start:\n{child.log_tail()}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(url)).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} not ready:\n{child.log_tail()}")
                    await asyncio.sleep(0.3)
    except BaseException:
        services.stop()
        raise
    return services


@dataclass
class Mailbox:
    """When the sink received the first mail for each address (its file names carry the time)."""

    path: Path
    read: set[str] = field(default_factory=set)
    first: dict[str, float] = field(default_factory=dict)

    def scan(self) -> None:
        for entry in self.path.glob("*.eml"):
            if entry.name in self.read:
                continue
            self.read.add(entry.name)
            with entry.open("rb") as f:
                header = f.readline().decode(errors="replace")  # X-Envelope-To: <address>
            address = header.partition(":")[2].strip()
            stamp = datetime.strptime(entry.name.split("-", 1)[0], "%Y%m%dT%H%M%S.%fZ")
            when = stamp.replace(tzinfo=UTC).timestamp()
            self.first[address] = min(when, self.first.get(address, when))


async def e2e_latency(
    stack: Stack, services: Services, rate: float, seconds: float
) -> tuple[list[float], int]:
    """Submit `rate` applications per second for `seconds`; each one's latency from the POST
    to the sink's receipt of the student's confirmation."""
    base = f"http://{stack.servers.host}:{services.ports['applications']}"
    infra = Infra(stack.kafka, stack.mongo, "", 0, None, None, None, stack.jwt_secret)
    count = int(rate * seconds)
    warm = 5
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        driver = ApplicationsDriver(http, infra)
        cohort = await driver.cohort()
        company = await driver.company()
        position = await driver.position(company, cohort, capacity=5)
        say(f"    registering {count + warm} students ...")
        students = []
        for n in range(count + warm):
            students.append(await driver.student(f"stu-e2e-{uuid.uuid4().hex[:8]}"))
            if n % 50 == 49:
                say(f"      ... {n + 1}")
        # Students register before they apply: wait until notifications knows them all.
        client = connect(stack.mongo)
        contacts = client[services.databases["notifications"]]["contacts"]
        deadline = time.monotonic() + 300
        while await contacts.count_documents({"party_type": "student"}) < len(students):
            if time.monotonic() > deadline:
                raise RuntimeError("contacts did not reach notifications")
            await asyncio.sleep(0.5)
        await client.close()
        assert stack.servers.mailbox is not None
        for student in students[:warm]:
            await driver.apply(student, cohort, [position])
        await asyncio.sleep(3)
        say(f"    submitting {count} applications at {rate:g}/s ...")
        submitted: dict[str, float] = {}

        async def submit(student: str) -> None:
            submitted[f"{student}@example.tw"] = time.time()
            await driver.apply(student, cohort, [position])

        tasks = []
        started = time.monotonic()
        for i, student in enumerate(students[warm:]):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(submit(student)))
        await asyncio.gather(*tasks)
    mailbox = Mailbox(stack.servers.mailbox)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        mailbox.scan()
        if all(address in mailbox.first for address in submitted):
            break
        await asyncio.sleep(0.5)
    latencies = [mailbox.first[a] - t for a, t in submitted.items() if a in mailbox.first]
    return latencies, len(submitted) - len(latencies)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) == pgid:  # pgrp, after state and ppid
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLK_TCK


async def idle_cpu(groups: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - started
    return {
        name: (group_cpu_seconds(pgid) - before[name]) / wall * 100 for name, pgid in groups.items()
    }


# ------------------------------------------------------------------ main


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def interleaved(
    label: str,
    ours: Callable[[], Awaitable[float]],
    baseline: Callable[[], Awaitable[float]],
    reps: int,
    unit: str,
    references: Sequence[Callable[[], Awaitable[float]]] = (),
) -> tuple[list[float], list[float], list[list[float]]]:
    """Ours, the baseline and each reference in turn, `reps` times."""
    mine: list[float] = []
    theirs: list[float] = []
    others: list[list[float]] = [[] for _ in references]
    for rep in range(1, reps + 1):
        mine.append(await ours())
        say(f"  {label} rep {rep}/{reps}: ours {mine[-1]:.1f} {unit}")
        theirs.append(await baseline())
        say(f"  {label} rep {rep}/{reps}: baseline {theirs[-1]:.1f} {unit}")
        for n, (reference, values) in enumerate(zip(references, others, strict=True), start=1):
            values.append(await reference())
            say(f"  {label} rep {rep}/{reps}: reference {n} {values[-1]:.1f} {unit}")
    return mine, theirs, others


async def run(args: argparse.Namespace, stack: Stack, work: Path) -> None:
    # The services log as they do under `make run` (JSON lines), here into a file.
    configure_logging("INFO", True)
    log_file = (work / "in-process.log").open("a")
    logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]

    say(f"[1/6] consumer: matching applies {args.events} application-submitted events")
    c_ours, c_raw, _ = await interleaved(
        "consumer",
        lambda: our_consumer(stack, args.events),
        lambda: raw_consumer(stack, args.events),
        args.reps,
        "events/s",
    )
    say(f"[2/6] contacts: notifications keeps {args.contacts} contacts")
    k_ours, k_raw, _ = await interleaved(
        "contacts",
        lambda: our_contacts(stack, args.contacts),
        lambda: raw_contacts(stack, args.contacts),
        args.reps,
        "contacts/s",
    )
    say(f"[3/6] delivery: {args.mails} planned e-mails")
    d_ours, d_raw, (d_bulk, d_alone) = await interleaved(
        "delivery",
        lambda: our_delivery(stack, args.mails),
        lambda: raw_sender(stack, args.mails),
        args.reps,
        "mails/s",
        references=(
            lambda: raw_sender(stack, args.mails, bulk=50),
            lambda: smtp_alone(stack, args.mails),
        ),
    )
    say("[4/6] claim query time by size of the message log")
    claims = await claim_times(stack, [1000, 20000], due=50, tries=5)

    say(f"[5/6] submit -> e-mail at {args.rate:g} applications/s for {args.e2e_seconds:g} s")
    services = await start_services(stack, work / "logs")
    try:
        latencies, missing = await e2e_latency(stack, services, args.rate, args.e2e_seconds)
        say(f"[6/6] idle CPU: {args.idle_seconds:g} s with no traffic (after a 10 s pause)")
        await asyncio.sleep(10)
        groups = {name: child.pid for name, child in services.children.items()}
        groups |= {c.name.split(" ")[0]: c.pid for c in stack.servers.children}
        idle = await idle_cpu(groups, args.idle_seconds)
    finally:
        services.stop()

    c_ratio = statistics.median(c_ours) / statistics.median(c_raw)
    k_ratio = statistics.median(k_ours) / statistics.median(k_raw)
    d_ratio = statistics.median(d_ours) / statistics.median(d_raw)
    p50 = percentile(latencies, 0.5) * 1000 if latencies else float("nan")
    p99 = percentile(latencies, 0.99) * 1000 if latencies else float("nan")
    small, large = claims[1000], claims[20000]
    idle_max = max(idle[name] for name in SERVICES)

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:.0f}" for v in values)

    say("")
    say(f"Load average at the end: {load()} (2 cores shared; only same-run ratios count)")
    say("")
    say("| stage | ours | baseline | ratio |")
    say("|---|---|---|---|")
    say(
        f"| matching applies `application-submitted` | {statistics.median(c_ours):.0f} events/s "
        f"({runs(c_ours)}) | raw aiokafka + one transaction per poll batch: "
        f"{statistics.median(c_raw):.0f} events/s ({runs(c_raw)}) | {c_ratio:.2f} |"
    )
    say(
        f"| notifications takes in `contacts` | {statistics.median(k_ours):.0f} contacts/s "
        f"({runs(k_ours)}) | raw aiokafka + one transaction per poll batch: "
        f"{statistics.median(k_raw):.0f} contacts/s ({runs(k_raw)}) | {k_ratio:.2f} |"
    )
    say(
        f"| notifications delivers e-mail | {statistics.median(d_ours):.0f} mails/s "
        f"({runs(d_ours)}) | raw aiosmtplib, one reused connection, one write per mail: "
        f"{statistics.median(d_raw):.0f} mails/s ({runs(d_raw)}) | {d_ratio:.2f} |"
    )
    for what, values in (
        ("the same raw sender, marks written 50 at a time", d_bulk),
        ("the same mails, composed beforehand, over one connection, no database", d_alone),
    ):
        say(
            f"| (reference) {what} | — | {statistics.median(values):.0f} mails/s "
            f"({runs(values)}) | {statistics.median(d_ours) / statistics.median(values):.2f} |"
        )
    say(
        f"| submit → e-mail, {args.rate:g} applications/s | p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"({len(latencies)} mails, {missing} missing) | — | — |"
    )
    say(
        f"| claim 50 due messages, 1k / 20k stored | {small['claim']:.1f} / "
        f"{large['claim']:.1f} ms | old single-message claim: {small['old_claim']:.1f} / "
        f"{large['old_claim']:.1f} ms | {large['claim'] / small['claim']:.2f} (20k / 1k) |"
    )
    for name, key in ((f"claim 50, {IN_FLIGHT} in flight", "claim_ahead"), ("record 50", "record")):
        say(
            f"| {name}, 1k / 20k stored | {small[key]:.1f} / {large[key]:.1f} ms | — | "
            f"{large[key] / small[key]:.2f} (20k / 1k) |"
        )
    say(
        f"| idle CPU, {args.idle_seconds:g} s | "
        + ", ".join(f"{name} {idle[name]:.1f} %" for name in SERVICES)
        + " | "
        + ", ".join(f"{name} {value:.1f} %" for name, value in idle.items() if name not in SERVICES)
        + " | — |"
    )
    say("")
    say(f"consumer ratio vs raw batched: {c_ratio:.2f}")
    say(f"delivery ratio vs raw smtp: {d_ratio:.2f}")
    say(f"e2e p99 ms at {args.rate:g}/s: {p99:.0f}")
    say(f"idle cpu % max service: {idle_max:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--mails", type=int, default=400)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--e2e-seconds", type=float, default=40.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    servers = EmbeddedServers(
        data_dir=work,
        kafka_port=free_port(),
        mongo_port=free_port(),
        smtp_port=free_port(),
    )
    say(f"Pipeline benchmark; load average {load()}; data and logs in {work}")
    say("starting the embedded Kafka, MongoDB and SMTP sink ...")
    servers.start()
    try:
        asyncio.run(run(args, Stack(servers), work))
    finally:
        servers.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
