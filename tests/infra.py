"""Real servers for the tests: the embedded ones (default), or external ones named by
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI / SMTP_HOST."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import jwt
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import FastAPI

from deploy.embedded.processes import free_port
from deploy.embedded.servers import EmbeddedServers
from shared.auth import ALGORITHM, Role, mint_token
from shared.settings import CommonSettings
from tests.containers import ContainerServers, docker_engine_available


@dataclass
class Infra:
    kafka_bootstrap: str
    mongodb_uri: str
    smtp_host: str
    smtp_port: int
    mailbox: Path | None
    servers: EmbeddedServers | None
    containers: ContainerServers | None
    jwt_secret: str

    def stop(self) -> None:
        if self.servers is not None:
            self.servers.stop()
        if self.containers is not None:
            self.containers.stop()

    def settings(self, cls: type[CommonSettings] = CommonSettings, **overrides: Any) -> Any:
        """Settings for one isolated test deployment: its own topics, groups and databases."""
        tag = overrides.pop("tag", None) or uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap,
            "mongodb_uri": self.mongodb_uri,
            "kafka_topic_prefix": f"t{tag}.",
            "kafka_group_prefix": f"t{tag}.",
            "kafka_topic_partitions": 2,
            "jwt_secret": self.jwt_secret,
            "log_json": False,
            "outbox_poll_seconds": 0.2,
            "consumer_retry_backoff_seconds": 0.05,
        }
        values.update(overrides)
        return cls(**values)

    def token(self, role: Role, sub: str) -> str:
        settings = CommonSettings(jwt_secret=self.jwt_secret)  # type: ignore[arg-type]
        return mint_token(settings, role, sub)

    def forged_token(self, role: str, sub: str) -> str:
        """Correctly signed claims that `mint_token` would refuse to write (e.g. a student
        role with a company's id): what an attacker holding a signing path would send."""
        now = datetime.now(UTC)
        claims = {
            "sub": sub,
            "role": role,
            "iss": CommonSettings().jwt_issuer,
            "iat": now,
            "exp": now + timedelta(hours=1),
        }
        return jwt.encode(claims, self.jwt_secret, algorithm=ALGORITHM)


def start_infra(base: Path) -> Infra:
    """External servers where named; else containers where a Docker engine answers; else
    the embedded servers. The SMTP sink is always the embedded one unless SMTP_HOST is set,
    so that tests can read what was sent."""
    external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    external_mongo = os.environ.get("MONGODB_URI")
    external_smtp = os.environ.get("SMTP_HOST")
    containers = None
    if (
        not (external_kafka and external_mongo)
        and os.environ.get("TESTS_CONTAINERS", "auto") != "never"
        and docker_engine_available()
    ):
        containers = ContainerServers()
        kafka, mongo = containers.start()
        external_kafka = external_kafka or kafka
        external_mongo = external_mongo or mongo
    servers = EmbeddedServers(
        data_dir=base,
        kafka_port=free_port(),
        mongo_port=free_port(),
        smtp_port=free_port(),
        kafka=not external_kafka,
        mongo=not external_mongo,
        smtp=not external_smtp,
        mongo_in_memory=True,
    )
    try:
        servers.start()
    except BaseException:
        if containers is not None:
            containers.stop()
        raise
    return Infra(
        kafka_bootstrap=external_kafka or servers.kafka_bootstrap,
        mongodb_uri=external_mongo or servers.mongodb_uri,
        smtp_host=external_smtp or servers.host,
        smtp_port=int(os.environ.get("SMTP_PORT", servers.smtp_port)),
        mailbox=None if external_smtp else servers.mailbox,
        servers=servers,
        containers=containers,
        jwt_secret=secrets.token_urlsafe(32),
    )


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service in-process (its lifespan starts Kafka consumers and the outbox relay)
    and give an HTTP client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


class TopicReader:
    """Reads a topic from the beginning without a consumer group, to observe what was published."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        partitions = None
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            partitions = self._consumer.partitions_for_topic(self.topic)
            if not partitions:
                await self._consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
        assert partitions, f"topic {self.topic} does not exist"
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self) -> None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=200)
        for records in batch.values():
            self.records.extend(records)

    async def wait_for(
        self,
        predicate: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
        timeout: float = 20.0,
    ) -> list[ConsumerRecord[bytes, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.poll()
            if predicate(self.records):
                return self.records
        raise AssertionError(
            f"timed out on {self.topic}; saw {len(self.records)} records: "
            f"{[r.value[:200] if r.value else None for r in self.records][:10]}"
        )

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records if r.value is not None]


_PARSED: dict[Path, EmailMessage] = {}


def read_mailbox(mailbox: Path) -> list[EmailMessage]:
    """Every message the SMTP sink saved, oldest first. Each file is parsed once: the sink
    renames complete files into place and never changes them, and the session's mailbox
    grows to hundreds of messages that tests poll."""
    policy = email.policy.default
    messages = []
    for path in sorted(mailbox.glob("*.eml")):
        if path not in _PARSED:
            with path.open("rb") as f:
                _PARSED[path] = email.message_from_binary_file(f, policy=policy)  # type: ignore[assignment]
        messages.append(_PARSED[path])
    return messages


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Await `check()` until it returns something truthy (it may be sync or async)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last value: {last!r})")
