"""The wiring every service shares: MongoDB client, Kafka producer, outbox relay, idempotent
consumer, periodic jobs, and the HTTP app with health, readiness and AsyncAPI.

`self.broker` is a FastStream broker that is never started: it only describes the service's
channels (what it publishes and what it consumes, each with its payload model) for the
AsyncAPI document. Consuming is done by `shared.consumer.IdempotentConsumer` (see there why).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from swagger_ui_bundle import swagger_ui_path

from shared.consumer import BatchHandler, ContactHandler, EventHandler, IdempotentConsumer
from shared.errors import install_error_handlers
from shared.events.catalog import CATALOG, EventData
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent
from shared.http import harden
from shared.kafka import (
    IdempotentProducer,
    TopicPolicy,
    TopicReport,
    ensure_topics,
    is_unavailable,
)
from shared.mongo import connect, ping
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings
from shared.weather import KAFKA

log = logging.getLogger(__name__)

VERSION = "0.1.0"


class ServiceRuntime:
    def __init__(
        self,
        *,
        name: str,
        settings: CommonSettings,
        database: str,
        publishes: list[type[EventData]],
        publishes_contacts: bool = False,
    ) -> None:
        self.name = name
        self.settings = settings
        self.client = connect(settings.mongodb_uri)
        self.db = self.client[database]
        # Never started: it documents the channels (see the module docstring).
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=name,
            logger=logging.getLogger(f"faststream.{name}"),
            log_level=logging.DEBUG,
        )
        self.producer = IdempotentProducer(settings.kafka_bootstrap_servers, client_id=name)
        self.relay = OutboxRelay(
            self.db,
            self.producer,
            topic_name=settings.topic,
            poll_seconds=settings.outbox_poll_seconds,
            batch_size=settings.outbox_batch_size,
            lease_seconds=settings.outbox_lease_seconds,
            verify_after_seconds=settings.outbox_verify_after_seconds,
            stuck_seconds=settings.outbox_stuck_seconds,
            ensure_topics=self.ensure_topics,
        )
        self.outbox = Outbox(
            self.db,
            source=f"/services/{name}",
            on_added=self.relay.wake,
            max_message_bytes=settings.kafka_max_message_bytes,
        )
        self.consumer = IdempotentConsumer(
            name=name,
            client=self.client,
            db=self.db,
            producer=self.producer,
            settings=settings,
        )
        self.topic_mismatches: list[str] = []
        self.kafka_started = False
        self.topics: list[str] = [m.event_name for m in publishes]
        self.compacted: set[str] = set()
        self._setups: list[Callable[[], Awaitable[Any]]] = []
        self._periodic: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = []
        self._background: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        for model in publishes:
            self.broker.publisher(
                settings.topic(model.event_name),
                title=f"{model.event_name}",
                description=(model.__doc__ or f"{model.event_name} events").strip(),
                schema=CloudEvent[model],  # type: ignore[valid-type]
            )
        if publishes_contacts:
            self._declare_contacts()
            self.broker.publisher(
                settings.topic(CONTACTS_TOPIC),
                title=CONTACTS_TOPIC,
                description="Restricted, compacted: contacts keyed by role:party id; null = erase.",
                schema=ContactRecord,
            )

    def _declare_contacts(self) -> None:
        if CONTACTS_TOPIC not in self.topics:
            self.topics.append(CONTACTS_TOPIC)
        self.compacted.add(CONTACTS_TOPIC)

    def consumes(self, topic: str, handler: EventHandler) -> None:
        """Apply every event of `topic` with `handler(event, session)`, effectively once."""
        if topic not in self.topics:
            self.topics.append(topic)
        self.consumer.subscribe(topic, handler)
        model = CATALOG[topic]
        self._document_subscriber(
            topic,
            CloudEvent[model],  # type: ignore[valid-type]
            (handler.__doc__ or f"{self.name} applies {topic}").strip(),
        )

    def consumes_batch(self, topic: str, handler: BatchHandler) -> None:
        """Like `consumes`, but `handler(events, session)` gets all new events of one poll
        for one partition at once (in order), e.g. to write them with one bulk_write."""
        if topic not in self.topics:
            self.topics.append(topic)
        self.consumer.subscribe_batch(topic, handler)
        model = CATALOG[topic]
        self._document_subscriber(
            topic,
            CloudEvent[model],  # type: ignore[valid-type]
            (handler.__doc__ or f"{self.name} applies {topic}").strip(),
        )

    def consumes_contacts(self, handler: ContactHandler) -> None:
        """Keep a private copy of contacts: `handler(party_id, record or None, session)`."""
        self._declare_contacts()
        self.consumer.subscribe_contacts(handler)
        self._document_subscriber(
            CONTACTS_TOPIC, ContactRecord, f"{self.name} keeps its private contacts copy"
        )

    def _document_subscriber(self, topic: str, payload: Any, description: str) -> None:
        """Declare a consumed channel with its payload model on the AsyncAPI broker."""

        async def document(message: Any) -> None:  # never called: the broker never starts
            raise AssertionError("documentation only")

        document.__name__ = f"{self.name}_{topic}".replace("-", "_").replace(".", "_")
        document.__annotations__ = {"message": payload, "return": None}
        self.broker.subscriber(
            self.settings.topic(topic),
            group_id=self.consumer.group_id,
            title=f"{self.name}:{topic}",
            description=description,
        )(document)

    def on_start(self, setup: Callable[[], Awaitable[Any]]) -> None:
        """Register an async setup step (indexes, seed data) run before consuming starts."""
        self._setups.append(setup)

    def every(self, name: str, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        """Run `job` periodically while the service runs (errors are logged, not fatal)."""
        self._periodic.append((name, seconds, job))

    def background(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a long-lived loop (it handles its own errors) while the service runs."""
        self._background.append((name, loop))

    async def start(self) -> None:
        await self.outbox.ensure_indexes()
        await self.consumer.ensure_indexes()
        for setup in self._setups:
            await setup()
        try:
            await self._start_kafka_side()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The HTTP side works without Kafka (the outbox keeps what is to be published);
            # the Kafka side starts as soon as the broker answers.
            KAFKA.down(exc)
            self._tasks.append(
                asyncio.create_task(self._start_kafka_side_later(), name=f"{self.name}-kafka")
            )
        for loop_name, loop in self._background:
            self._tasks.append(asyncio.create_task(loop(), name=loop_name))  # type: ignore[arg-type]
        for job_name, seconds, job in self._periodic:
            self._tasks.append(
                asyncio.create_task(self._repeat(job_name, seconds, job), name=job_name)
            )
        self.started = True
        log.info("service started", extra={"service": self.name, "topics": self.topics})

    async def stop(self) -> None:
        self.started = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.consumer.stop()
        # One last pass so that what committed just before shutdown is not left waiting;
        # then hand the lease over at once instead of letting it run out.
        try:
            if self.relay.active:
                await asyncio.wait_for(self.relay.publish_pending(), timeout=5)
                await self.relay.release_lease()
        except Exception:
            log.warning("final outbox pass failed; entries stay for the next start")
        await self.relay.close()
        await self.producer.stop()
        await self.client.close()
        log.info("service stopped", extra={"service": self.name})

    async def _start_kafka_side(self) -> None:
        self.topic_mismatches = (await self.ensure_topics()).mismatches
        try:
            await self.producer.start()
        except Exception:
            await self.producer.stop()
            raise
        await self.consumer.start()
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox"))
        self.kafka_started = True

    async def _start_kafka_side_later(self) -> None:
        delay = 1.0
        while not self.kafka_started:
            await asyncio.sleep(delay)
            try:
                await self._start_kafka_side()
            except Exception as exc:
                KAFKA.down(exc)
                delay = min(delay * 2, 30.0)
        KAFKA.up()

    async def ensure_topics(self) -> TopicReport:
        """Create the service's topics (and DLQs) with the configuration the code owns."""
        s = self.settings
        return await ensure_topics(
            s.kafka_bootstrap_servers,
            [s.topic(t) for t in self.topics],
            partitions=s.kafka_topic_partitions,
            replication=s.kafka_replication_factor,
            compacted=frozenset(s.topic(t) for t in self.compacted),
            policy=TopicPolicy(
                partitions=s.kafka_topic_partitions,
                replication=s.kafka_replication_factor,
                retention_ms=s.kafka_event_retention_ms,
                max_compaction_lag_ms=s.kafka_contacts_max_compaction_lag_ms,
                delete_retention_ms=s.kafka_contacts_delete_retention_ms,
            ),
        )

    async def _repeat(self, name: str, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic job failed", extra={"job": name})
            await asyncio.sleep(seconds)

    async def kafka_reachable(self) -> bool:
        try:
            await asyncio.wait_for(self.producer.producer.client.fetch_all_metadata(), 2.0)
        except Exception as exc:
            KAFKA.down(exc)
            return False
        KAFKA.up()
        return True

    async def readiness(self) -> dict[str, Any]:
        mongo_ok = await ping(self.db)
        kafka_ok = self.kafka_started and await self.kafka_reachable()
        consumer_ok = self.consumer.healthy
        return {
            "service": self.name,
            "ready": bool(
                self.started and mongo_ok and kafka_ok and self.relay.healthy and consumer_ok
            ),
            "mongodb": mongo_ok,
            "kafka": kafka_ok,
            "outbox_relay": self.relay.healthy,
            "consumer": consumer_ok,
            "partitions_assigned": self.consumer.assigned.is_set(),
            "events": dict(self.consumer.counts),
            "published": self.relay.published,
            "republished": self.relay.republished,
            "producer_recreated": self.producer.recreated,
            "topic_config_mismatches": self.topic_mismatches,
        }

    def liveness(self) -> dict[str, Any]:
        """Alive unless the outbox relay is stuck: unsent events without progress for longer
        than OUTBOX_STUCK_SECONDS (a restart gets a fresh producer and connections)."""
        return {"service": self.name, "alive": not self.relay.stuck}

    def asyncapi(self) -> dict[str, Any]:
        spec = AsyncAPI(
            self.broker,
            title=f"{self.name} events",
            version=VERSION,
            description=f"Topics the {self.name} service publishes and consumes.",
        )
        return spec.to_specification().to_jsonable()  # type: ignore[no-any-return]

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def create_http_app(
    runtime: ServiceRuntime, *, title: str, description: str, routers: list[APIRouter]
) -> FastAPI:
    # docs_url=None: the API docs page is served below from local assets, not from a CDN.
    app = FastAPI(
        title=title,
        description=description,
        version=VERSION,
        lifespan=runtime.lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.state.settings = runtime.settings
    app.state.runtime = runtime
    install_error_handlers(app)
    harden(app, runtime.settings)  # body limit, security headers, error docs; needs JWT_SECRET

    @app.get("/health/live", tags=["health"])
    async def live(response: Response) -> dict[str, Any]:
        report = runtime.liveness()
        if not report["alive"]:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "ok" if report["alive"] else "stuck", **report}

    @app.get("/health/ready", tags=["health"])
    async def ready(response: Response) -> dict[str, Any]:
        report = await runtime.readiness()
        if not report["ready"]:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return report

    @app.get(
        "/asyncapi.json", tags=["health"], summary="AsyncAPI document of this service's topics"
    )
    async def asyncapi() -> dict[str, Any]:
        return runtime.asyncapi()

    for router in routers:
        app.include_router(router)
    return app
