"""The wiring every service shares: MongoDB client, Kafka broker and producer, outbox relay,
idempotent consumer, periodic jobs, and the HTTP app with health, readiness and AsyncAPI."""

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

from shared.consumer import IdempotentConsumer
from shared.errors import install_error_handlers
from shared.events.catalog import EventData
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent
from shared.http import harden
from shared.kafka import IdempotentProducer, ensure_topics
from shared.mongo import connect, ping
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings

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
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=name,
            # Through our handlers (JSON lines), not FastStream's own coloured stdout handler.
            logger=logging.getLogger(f"faststream.{name}"),
            # Our consumer logs one structured line per event; FastStream's own lines go to DEBUG.
            log_level=logging.DEBUG,
        )
        self.producer = IdempotentProducer(settings.kafka_bootstrap_servers, client_id=name)
        self.relay = OutboxRelay(
            self.db,
            self.producer,
            topic_name=settings.topic,
            poll_seconds=settings.outbox_poll_seconds,
            batch_size=settings.outbox_batch_size,
        )
        self.outbox = Outbox(
            self.db,
            source=f"/services/{name}",
            on_added=self.relay.wake,
            max_message_bytes=settings.kafka_max_message_bytes,
        )
        self.consumer = IdempotentConsumer(
            name=name,
            broker=self.broker,
            client=self.client,
            db=self.db,
            producer=self.producer,
            settings=settings,
        )
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

    def consumes(self, topic: str, handler: Any) -> None:
        if topic not in self.topics:
            self.topics.append(topic)
        self.consumer.subscribe(topic, handler)

    def consumes_contacts(self, handler: Any) -> None:
        self._declare_contacts()
        self.consumer.subscribe_contacts(handler)

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
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            [self.settings.topic(t) for t in self.topics],
            partitions=self.settings.kafka_topic_partitions,
            replication=self.settings.kafka_replication_factor,
            compacted=frozenset(self.settings.topic(t) for t in self.compacted),
        )
        await self.producer.start()
        await self.broker.start()
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox"))
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
        await self.broker.stop()
        # One last pass so that what committed just before shutdown is not left waiting;
        # then hand the lease over at once instead of letting it run out.
        try:
            if self.relay.active:
                await asyncio.wait_for(self.relay.publish_pending(), timeout=5)
                await self.relay.release_lease()
        except Exception:
            log.warning("final outbox pass failed; entries stay for the next start")
        await self.producer.stop()
        await self.client.close()
        log.info("service stopped", extra={"service": self.name})

    async def _repeat(self, name: str, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic job failed", extra={"job": name})
            await asyncio.sleep(seconds)

    async def readiness(self) -> dict[str, Any]:
        mongo_ok = await ping(self.db)
        kafka_ok = await self.broker.ping(timeout=2.0)
        return {
            "service": self.name,
            "ready": bool(self.started and mongo_ok and kafka_ok and self.relay.healthy),
            "mongodb": mongo_ok,
            "kafka": kafka_ok,
            "outbox_relay": self.relay.healthy,
            "events": dict(self.consumer.counts),
            "published": self.relay.published,
        }

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
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

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
