"""The wiring every service shares: MongoDB client, Kafka producer, outbox relay, idempotent
consumer, periodic jobs, and the HTTP app with health, readiness and AsyncAPI.

`self.broker` is a FastStream broker that is never started: it only describes the service's
channels (what it publishes and what it consumes, each with its payload model) for the
AsyncAPI document. Consuming is done by `shared.consumer.IdempotentConsumer` (see there why).

Health: /health/live says the process works (it fails when the outbox relay is stuck or a
loop of the service died; a restart is the cure); /health/ready says it can take its traffic,
which needs MongoDB; Kafka away only degrades it (reported in the payload), since the outbox
keeps what is to be published and the consumers catch up. Uvicorn answers neither before
the service has started (indexes, topics): Kubernetes' startup probe waits for /health/live.
Every client is built with the connection security of shared/connections.py, and
/metrics (shared/metrics.py) and traces (shared/tracing.py) are wired here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from swagger_ui_bundle import swagger_ui_path

from shared.access_log import AccessLog
from shared.asyncapi import annotate
from shared.connections import kafka_client_options, kafka_security, mongo_client_options
from shared.consumer import (
    BatchHandler,
    ContactBatchHandler,
    EventHandler,
    IdempotentConsumer,
    stop_task,
)
from shared.errors import install_error_handlers
from shared.events.catalog import CATALOG, EventData
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent
from shared.http import harden
from shared.kafka import (
    IdempotentProducer,
    OffsetsReader,
    TopicPolicy,
    TopicReport,
    dlq_topic,
    ensure_topics,
    is_unavailable,
)
from shared.metrics import ServiceMetrics, set_per_label
from shared.mongo import connect, ping
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings
from shared.tracing import configure_tracing
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
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        # Before the MongoDB client: PyMongo's tracing listener applies to later clients.
        configure_tracing(name, VERSION)
        # A service with metrics of its own (the portal) passes them, so /metrics has both.
        self.metrics = metrics or ServiceMetrics(name, VERSION)
        self.client = connect(settings.mongodb_uri, **mongo_client_options(settings))
        self.db = self.client[database]
        # TLS/SASL for every Kafka client (empty for the embedded broker's PLAINTEXT).
        self.kafka_options = kafka_client_options(settings)
        # Never started: it documents the channels (see the module docstring).
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=name,
            security=kafka_security(settings),
            logger=logging.getLogger(f"faststream.{name}"),
            log_level=logging.DEBUG,
        )
        self.producer = IdempotentProducer(
            settings.kafka_bootstrap_servers, client_id=name, options=self.kafka_options
        )
        self.offsets = OffsetsReader(
            settings.kafka_bootstrap_servers,
            client_id=f"{name}-metrics",
            options=self.kafka_options,
        )
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
            metrics=self.metrics,
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
            metrics=self.metrics,
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
        self._reported: dict[str, set[str]] = {"lag": set(), "dlq": set()}
        self.metrics.refresh_with("outbox", self._refresh_outbox_metrics)
        self.metrics.refresh_with("kafka", self._refresh_kafka_metrics)
        self.metrics.refresh_with("dependencies", self._refresh_dependency_metrics)
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

    def consumes_contacts_batch(self, handler: ContactBatchHandler) -> None:
        """Keep a private copy of contacts, all of one poll's at once: `handler([(key,
        record or None), ...], session)`, split on failure as `consumes_batch` does."""
        self._declare_contacts()
        self.consumer.subscribe_contacts_batch(handler)
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
        # What this consumer cannot apply goes to the topic's dead-letter channel, unchanged.
        self.broker.publisher(
            self.settings.topic(dlq_topic(topic)),
            title=f"{self.name}:{dlq_topic(topic)}",
            description=f"Dead letters of the {self.name} service's consumer of {topic}: the "
            "original message with the reason in headers (listed and redriven with `make dlq`).",
            schema=payload,
        )

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
        await asyncio.gather(*(stop_task(task) for task in self._tasks))
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
        await self.offsets.close()
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
            client_options=self.kafka_options,
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

    async def mongodb_reachable(self) -> bool:
        try:
            ok = await asyncio.wait_for(ping(self.db), 2.0)
        except TimeoutError:
            ok = False
        self.metrics.dependency_up.labels("mongodb").set(ok)
        return ok

    async def readiness(self) -> dict[str, Any]:
        """Ready = started and MongoDB answers: every request needs MongoDB. Kafka away only
        degrades the service: writes go on into the outbox, events wait in Kafka."""
        mongo_ok, kafka_ok = await asyncio.gather(
            self.mongodb_reachable(),
            self.kafka_reachable() if self.kafka_started else _false(),
        )
        self.metrics.dependency_up.labels("kafka").set(kafka_ok)
        consumer_ok = self.consumer.healthy
        ready = bool(self.started and mongo_ok)
        degraded = [
            what
            for what, ok in (
                ("kafka", kafka_ok),
                ("outbox_relay", self.relay.healthy),
                ("consumer", consumer_ok),
            )
            if not ok
        ]
        return {
            "service": self.name,
            "ready": ready,
            "status": ("degraded" if degraded else "ready") if ready else "not ready",
            "degraded": degraded,
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
        """Alive unless the outbox relay is stuck (unsent events without progress for longer
        than OUTBOX_STUCK_SECONDS) or a loop of the service died (the consumer, the relay, a
        background loop): a restart gets fresh loops, producer and connections. An outage
        of MongoDB or Kafka is not a reason: the loops wait for it, and a restart would not
        bring it back."""
        died = [
            task.get_name()
            for task in [*self._tasks, *self.consumer.tasks()]
            if task.done() and not task.cancelled() and task.exception() is not None
        ]
        alive = not self.relay.stuck and not died
        return {
            "service": self.name,
            "alive": alive,
            "outbox_stuck": self.relay.stuck,
            "loops_died": died,
        }

    # -- metrics read at scrape time ------------------------------------------------------

    async def _refresh_outbox_metrics(self) -> None:
        backlog = await self.relay.backlog()
        self.metrics.outbox_unsent.set(backlog.unsent)
        self.metrics.outbox_oldest_age.set(backlog.oldest_age_seconds)
        self.metrics.outbox_unverified.set(backlog.unverified)
        self.metrics.outbox_stuck.set(self.relay.stuck)

    async def _refresh_dependency_metrics(self) -> None:
        """kitakyushu_dependency_up at every scrape, not only when a probe asked."""
        await asyncio.gather(
            self.mongodb_reachable(),
            self._kafka_up(),
        )

    async def _kafka_up(self) -> None:
        ok = await self.kafka_reachable() if self.kafka_started else False
        self.metrics.dependency_up.labels("kafka").set(ok)

    async def _refresh_kafka_metrics(self) -> None:
        """Consumer lag per topic (end offsets minus the group's committed offsets, over all
        partitions: every replica reports the group's lag) and the size of the DLQs of the
        topics this service consumes."""
        consumed = [r.topic for r in self.consumer.routes.values()]
        if not consumed or not self.kafka_started:
            return
        s = self.settings
        try:
            lag = await self.offsets.group_lag(
                self.consumer.group_id, {s.topic(t): t for t in consumed}
            )
            sizes = await self.offsets.sizes(
                {s.topic(dlq_topic(t)): dlq_topic(t) for t in consumed}
            )
        except BaseException:
            await self.offsets.close()  # clients that lost their broker start afresh
            raise
        set_per_label(self.metrics.consumer_lag, lag, self._reported["lag"])
        set_per_label(self.metrics.dlq_messages, sizes, self._reported["dlq"])

    def asyncapi(self) -> dict[str, Any]:
        spec = AsyncAPI(
            self.broker,
            title=f"{self.name} events",
            version=VERSION,
            description=f"Topics the {self.name} service publishes and consumes.",
        )
        doc = spec.to_specification().to_jsonable()
        return annotate(doc, restricted={self.settings.topic(CONTACTS_TOPIC)})

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
    app.state.metrics = runtime.metrics
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

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics of this service",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "The Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        body, content_type = await runtime.metrics.exposition()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    # Last: the outermost of the app's middlewares (see shared/access_log.py), and inside
    # OpenTelemetry's, which instrument_app puts around the whole stack.
    app.add_middleware(AccessLog, metrics=runtime.metrics)
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="/health/live,/health/ready,/metrics",
        exclude_spans=["receive", "send"],
    )
    return app


async def _false() -> bool:
    return False
