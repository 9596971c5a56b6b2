"""Faults against the real embedded servers: a broker that loses acknowledged writes, broker
restarts, a killed service, a MongoDB outage. Nothing is lost, nothing is applied twice, and
everything heals without a process restart.

These tests kill servers, so they start their own (on disk, like `make run`), not the
session's shared ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.embedded.processes import Child, free_port, spawn
from deploy.embedded.servers import EmbeddedServers
from shared.consumer import IdempotentConsumer
from shared.events import ApplicationSubmitted, PositionClosed, make_event
from shared.kafka import IdempotentProducer, dlq_topic, ensure_topics
from shared.mongo import Session, connect, in_transaction
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings
from tests.infra import TopicReader, eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServers]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("MONGODB_URI"):
        pytest.skip("fault injection needs servers this test can kill (the embedded ones)")
    s = EmbeddedServers(
        data_dir=tmp_path_factory.mktemp("faults"),
        kafka_port=free_port(),
        mongo_port=free_port(),
        smtp_port=free_port(),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


def settings_for(servers: EmbeddedServers, tag: str, **overrides: Any) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap,
        mongodb_uri=servers.mongodb_uri,
        kafka_topic_prefix=f"{tag}.",
        kafka_group_prefix=f"{tag}.",
        kafka_topic_partitions=2,
        consumer_retry_backoff_seconds=0.05,
        **overrides,
    )


def closed(position_id: str) -> PositionClosed:
    return PositionClosed(
        position_id=position_id,
        cohort_id="2026-summer",
        company_id="co-1",
        closed_at="2026-07-01T00:00:00Z",  # type: ignore[arg-type]
    )


async def event_ids_on(settings: CommonSettings, topic: str) -> set[str]:
    async with TopicReader(settings.kafka_bootstrap_servers, settings.topic(topic)) as reader:
        await reader.poll()
        await reader.poll()
        return {e["id"] for e in reader.events()}


class Relay:
    """An outbox and its relay, running as in a service."""

    def __init__(self, settings: CommonSettings, name: str, verify_after: float) -> None:
        self.settings = settings
        self.client = connect(settings.mongodb_uri)
        self.db = self.client[name]
        self.producer = IdempotentProducer(settings.kafka_bootstrap_servers, name)
        self.relay = OutboxRelay(
            self.db,
            self.producer,
            topic_name=settings.topic,
            poll_seconds=0.2,
            batch_size=100,
            verify_after_seconds=verify_after,
            ensure_topics=self.ensure_topics,
        )
        self.outbox = Outbox(self.db, source="/tests", on_added=self.relay.wake)
        self.task: asyncio.Task[None] | None = None

    async def ensure_topics(self) -> None:
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            [self.settings.topic("position-closed")],
            partitions=2,
            replication=1,
        )

    async def __aenter__(self) -> Relay:
        await self.outbox.ensure_indexes()
        await self.ensure_topics()
        await self.producer.start()
        self.task = asyncio.create_task(self.relay.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.relay.close()
        await self.producer.stop()
        await self.client.close()

    async def publish(self, prefix: str, count: int) -> list[str]:
        """`count` events in one transaction, like one state change that emits many."""

        async def emit(session: Session) -> list[str]:
            return [
                str((await self.outbox.add(session, closed(f"{prefix}-{i}"))).id)
                for i in range(count)
            ]

        return await in_transaction(self.client, emit)

    async def all_sent(self) -> bool:
        return await self.db["outbox"].count_documents({"sent_at": None}) == 0


async def test_broker_sigkill_right_after_publishing_loses_nothing(
    servers: EmbeddedServers,
) -> None:
    settings = settings_for(servers, "sigkill")
    async with Relay(settings, "faults_sigkill", verify_after=3) as r:
        ids = await r.publish("pos-k", 40)
        await eventually(r.all_sent, timeout=30)
        # Acknowledged and marked sent; the broker dies before its next snapshot.
        servers.kill("kafka", signal.SIGKILL)
        servers.restarter("kafka")()
        lost = set(ids) - await event_ids_on(settings, "position-closed")

        async def all_there() -> bool:
            return set(ids) <= await event_ids_on(settings, "position-closed")

        await eventually(all_there, timeout=60, interval=1)
        # What the crash took, the verifier put back (and the relay still publishes).
        assert r.relay.republished >= len(lost)
        later = await r.publish("pos-later", 5)

        async def later_there() -> bool:
            return set(later) <= await event_ids_on(settings, "position-closed")

        await eventually(later_there, timeout=30, interval=0.5)
        assert not r.relay.stuck


async def test_relay_recovers_from_broker_restart_without_process_restart(
    servers: EmbeddedServers,
) -> None:
    settings = settings_for(servers, "restart")
    async with Relay(settings, "faults_restart", verify_after=3) as r:
        first = await r.publish("pos-r1", 5)
        await eventually(r.all_sent, timeout=30)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            servers.kill("kafka", sig)
            servers.restarter("kafka")()
            again = await r.publish(f"pos-after-{sig.name}", 5)
            started = time.monotonic()

            async def arrived(ids: list[str] = again) -> bool:
                return set(ids) <= await event_ids_on(settings, "position-closed")

            await eventually(arrived, timeout=45, interval=0.5)
            print(f"relay published again {time.monotonic() - started:.1f} s after {sig.name}")
        assert set(first) <= await event_ids_on(settings, "position-closed")
        assert r.relay.healthy and not r.relay.stuck


class Counting:
    """An in-process consumer whose handler counts its effects in MongoDB."""

    def __init__(self, settings: CommonSettings, name: str) -> None:
        self.client = connect(settings.mongodb_uri)
        self.db = self.client[name]
        self.producer = IdempotentProducer(settings.kafka_bootstrap_servers, name)
        self.consumer = IdempotentConsumer(
            name=name,
            client=self.client,
            db=self.db,
            producer=self.producer,
            settings=settings,
        )
        self.consumer.subscribe("position-closed", self.effect)

    async def effect(self, event: Any, session: Session) -> None:
        await self.db["effects"].update_one(
            {"_id": event.subject}, {"$inc": {"count": 1}}, upsert=True, session=session
        )

    async def counts(self) -> dict[str, int]:
        return {d["_id"]: d["count"] async for d in self.db["effects"].find()}

    async def __aenter__(self) -> Counting:
        await self.producer.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.client.close()


async def test_a_20s_mongodb_stop_dead_letters_nothing_and_loses_nothing(
    servers: EmbeddedServers,
) -> None:
    settings = settings_for(servers, "mongostop", consumer_outage_backoff_max_seconds=4)
    topic = settings.topic("position-closed")
    await ensure_topics(settings.kafka_bootstrap_servers, [topic], partitions=2, replication=1)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    subjects = [f"pos-m{i}" for i in range(60)]

    async def send(batch: list[str]) -> None:
        for subject in batch:
            event = make_event(closed(subject), source="/tests", subject=subject)
            await producer.send_and_wait(topic, key=subject.encode(), value=event.to_bytes())
            await asyncio.sleep(0.05)

    try:
        async with Counting(settings, "faults_mongostop") as c:
            await send(subjects[:20])
            await eventually(lambda: _has(c, subjects[:20]), timeout=30)
            servers.kill("mongodb", signal.SIGTERM)
            stopped = time.monotonic()
            await send(subjects[20:50])  # arrives while MongoDB is away
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
            servers.restarter("mongodb")()
            await send(subjects[50:])
            await eventually(lambda: _has(c, subjects), timeout=90, interval=0.5)
            counts = await c.counts()
            assert {s: counts[s] for s in subjects} == dict.fromkeys(subjects, 1)
            assert c.consumer.counts["dead-lettered"] == 0
        async with TopicReader(settings.kafka_bootstrap_servers, dlq_topic(topic)) as dlq:
            await dlq.poll()
            await dlq.poll()
            assert dlq.records == []
    finally:
        await producer.stop()


async def _has(c: Counting, subjects: list[str]) -> bool:
    try:
        counts = await c.counts()
    except Exception:
        return False  # MongoDB still coming back
    return all(s in counts for s in subjects)


class ServiceProcess:
    """A service run as `make run` runs it: its own process, killable."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.env = env
        self.port = int(env[f"{name.upper()}_HTTP_PORT"])
        self.logs = logs
        self.child: Child | None = None

    def start(self) -> None:
        self.child = spawn(
            self.name,
            [sys.executable, "-m", f"services.{self.name}"],
            self.logs / f"{self.name}.log",
            env=self.env,
        )

    def kill(self) -> None:
        assert self.child is not None
        self.child.stop(signal_first=signal.SIGKILL)

    async def ready(self, timeout: float = 90) -> None:
        url = f"http://127.0.0.1:{self.port}/health/ready"

        async def answers() -> bool:
            assert self.child is not None
            assert self.child.alive(), self.child.log_tail()
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(url, timeout=3)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, timeout=timeout, interval=0.3)


def service_env(servers: EmbeddedServers, tag: str, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
        "MONGODB_URI": servers.mongodb_uri,
        "KAFKA_TOPIC_PREFIX": f"{tag}.",
        "KAFKA_GROUP_PREFIX": f"{tag}.",
        "SMTP_HOST": servers.host,
        "SMTP_PORT": str(servers.smtp_port),
        "JWT_SECRET": "fault-injection-secret-" + "x" * 32,
        "LOG_JSON": "true",
        "APPLICATIONS_HTTP_PORT": str(free_port()),
        "MATCHING_HTTP_PORT": str(free_port()),
        "NOTIFICATIONS_HTTP_PORT": str(free_port()),
        "APPLICATIONS_DATABASE": f"{tag}_applications",
        "MATCHING_DATABASE": f"{tag}_matching",
        "NOTIFICATIONS_DATABASE": f"{tag}_notifications",
        **extra,
    }


def submitted(application_id: str) -> ApplicationSubmitted:
    return ApplicationSubmitted(
        application_id=application_id,
        cohort_id="2026-summer",
        student_id=f"stu-{application_id}",
        ranked_position_ids=["pos-1"],
        department="Electrical Engineering",
        degree_program="master",
        graduation_year=2028,
        jlpt_level="N2",  # type: ignore[arg-type]
        english_level="B2",  # type: ignore[arg-type]
        skills=["python"],
        available_from="2027-06-15",  # type: ignore[arg-type]
        available_to="2027-09-15",  # type: ignore[arg-type]
        consent_to_data_use=True,
        submitted_at="2026-05-01T00:00:00Z",  # type: ignore[arg-type]
    )


async def test_a_killed_service_consumes_again_within_30s_without_a_broker_restart(
    servers: EmbeddedServers, tmp_path: Path
) -> None:
    tag = "svckill"
    env = service_env(servers, tag)
    matching = ServiceProcess("matching", env, tmp_path)
    settings = settings_for(servers, tag)
    topic = settings.topic("application-submitted")
    client = connect(servers.mongodb_uri)
    applications = client[f"{tag}_matching"]["applications"]
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap)
    await producer.start()

    async def submit(application_id: str) -> None:
        event = make_event(submitted(application_id), source="/tests", subject=application_id)
        await producer.send_and_wait(topic, key=application_id.encode(), value=event.to_bytes())

    async def applied(application_id: str) -> bool:
        return await applications.find_one({"_id": application_id}) is not None

    try:
        matching.start()
        await matching.ready()
        await submit("app-before")
        await eventually(lambda: applied("app-before"), timeout=60)
        matching.kill()  # kill -9: it never leaves its consumer group
        matching.start()
        restarted = time.monotonic()
        await submit("app-after")
        await eventually(lambda: applied("app-after"), timeout=30, interval=0.2)
        print(f"consuming again {time.monotonic() - restarted:.1f} s after the restart")
    finally:
        if matching.child is not None:
            matching.child.stop()
        await producer.stop()
        await client.close()


def _mail_ids(mailbox: Path, template: str = "application_submitted.student") -> list[str]:
    """Message-IDs of the saved mails of one template (the company's approval notice and
    other mails of the scenario are not what is counted)."""
    import email
    import email.policy

    ids = []
    for path in sorted(mailbox.glob("*.eml")):
        with path.open("rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        if message["X-Template"] == template:
            ids.append(str(message["Message-ID"]))
    return ids


async def test_fault_injection_loses_nothing_and_applies_nothing_twice(
    servers: EmbeddedServers, tmp_path: Path
) -> None:
    """A few hundred applications through the three services while each kind of fault
    happens once: a service kill -9, the broker SIGKILLed and SIGTERMed, MongoDB SIGKILLed.
    Afterwards every acknowledged application is in matching's read model once, has one
    planned confirmation and exactly one e-mail."""
    from tests.driver import ApplicationsDriver
    from tests.infra import Infra

    tag = "chaos"
    env = service_env(
        servers,
        tag,
        DELIVERY_RETRY_BASE_SECONDS="0.2",
        DELIVERY_MAX_ATTEMPTS="1000",
        DELIVERY_LEASE_SECONDS="20",
        DELIVERY_POLL_SECONDS="0.5",
    )
    services = {
        n: ServiceProcess(n, env, tmp_path) for n in ("applications", "matching", "notifications")
    }
    for s in services.values():
        s.start()
    infra = Infra(
        kafka_bootstrap=servers.kafka_bootstrap,
        mongodb_uri=servers.mongodb_uri,
        smtp_host=servers.host,
        smtp_port=servers.smtp_port,
        mailbox=servers.mailbox,
        servers=None,
        containers=None,
        jwt_secret=env["JWT_SECRET"],
    )
    mails_before = set(_mail_ids(servers.mailbox))
    client = connect(servers.mongodb_uri)
    total = 200
    try:
        for s in services.values():
            await s.ready()
        base = f"http://127.0.0.1:{services['applications'].port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            driver = ApplicationsDriver(http, infra)
            cohort = await driver.cohort()
            company = await driver.company()
            position = await driver.position(company, cohort, capacity=5)

            async def kill_service() -> None:
                services["matching"].kill()
                services["matching"].start()

            async def kill_notifications_while_mail_is_down() -> None:
                # With the SMTP sink down no e-mail is in flight, so the kill cannot leave
                # one half-sent: every e-mail must then arrive exactly once.
                servers.kill("smtp", signal.SIGTERM)
                await asyncio.sleep(1)
                services["notifications"].kill()
                services["notifications"].start()
                await services["notifications"].ready()
                servers.restarter("smtp")()

            async def broker(sig: signal.Signals) -> None:
                servers.kill("kafka", sig)
                servers.restarter("kafka")()

            async def mongodb_crash() -> None:
                servers.kill("mongodb", signal.SIGKILL)
                servers.restarter("mongodb")()
                await services["applications"].ready()

            faults = {
                30: kill_service,
                60: lambda: broker(signal.SIGKILL),
                100: kill_notifications_while_mail_is_down,
                130: lambda: broker(signal.SIGTERM),
                160: mongodb_crash,
            }
            accepted: list[str] = []
            for i in range(total):
                if i in faults:
                    await faults[i]()
                student = await driver.student(f"stu-{tag}-{i:04d}", language="en")
                body = await driver.apply(student, cohort, [position])
                accepted.append(body["id"])
            assert len(accepted) == total

        matching_apps = client[f"{tag}_matching"]["applications"]
        messages = client[f"{tag}_notifications"]["messages"]

        async def converged() -> bool:
            try:
                in_matching = await matching_apps.count_documents({"_id": {"$in": accepted}})
                sent = await messages.count_documents(
                    {"topic": "application-submitted", "status": "sent"}
                )
            except Exception:
                return False
            return in_matching == total and sent == total

        await eventually(converged, timeout=240, interval=2)
        planned = await messages.count_documents({"topic": "application-submitted"})
        assert planned == total  # one confirmation per application, none twice
        processed = client[f"{tag}_matching"]["processed_events"]
        assert await processed.count_documents({"type": {"$regex": "application-submitted"}}) == (
            total
        )
        await asyncio.sleep(2)  # let the SMTP sink finish writing files
        mails = [m for m in _mail_ids(servers.mailbox) if m not in mails_before]
        duplicates = {m for m in mails if mails.count(m) > 1}
        assert len(set(mails)) == total, f"{len(set(mails))} distinct e-mails for {total}"
        assert not duplicates
        # Valid events were never dead-lettered by the outages.
        dlq = [servers.kafka_bootstrap, f"{tag}.application-submitted.dlq"]
        async with TopicReader(dlq[0], dlq[1]) as reader:
            await reader.poll()
            assert reader.records == []
    finally:
        for s in services.values():
            if s.child is not None:
                s.child.stop()
        await client.close()
        print(json.dumps({"logs": str(tmp_path)}))
