"""Prometheus metrics of one service, served at GET /metrics (prometheus-client).

Every series carries a `service` label (the registry adds it), so that dashboards and alert
rules work whatever the scrape configuration names its jobs. Counters move where things
happen (HTTP requests, handled events, published entries); gauges that describe stored
state (outbox backlog, consumer lag, DLQ sizes, pending deliveries) are read when Prometheus
scrapes, each source bounded in time, and at most every `min_refresh_seconds`.

What is not here: FastStream's Prometheus middleware measures messages that FastStream
subscribers and publishers handle; ours are our own aiokafka loop and relay (see
shared/consumer.py), so the same measurements are made where our code handles them. The
names of every metric are declared in this package and the services (`kitakyushu_...`);
tests/integration/test_observability.py fails on an alert rule or dashboard
(deploy/monitoring/) that names a metric no service exposes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

# Seconds: HTTP calls, event transactions and match rounds all fall in 5 ms .. 1 min.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceRegistry(CollectorRegistry):
    """A registry whose every sample carries service=<name>. prometheus-client has no
    constant labels; one registry per service also lets tests run several services in one
    process without their metrics mixing."""

    def __init__(self, service: str) -> None:
        super().__init__(auto_describe=True)
        self.service = service

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():
            metric.samples = [
                sample._replace(labels={"service": self.service, **sample.labels})
                for sample in metric.samples
            ]
            yield metric


Refresher = Callable[[], Awaitable[None]]


class HttpMetrics:
    """The metrics every web process has (HTTP, dependencies, scrape-time refreshing); the
    portal uses these alone (it has no consumer and no outbox), the services ServiceMetrics."""

    def __init__(self, service: str, version: str = "", min_refresh_seconds: float = 2.0) -> None:
        self.service = service
        self.registry = ServiceRegistry(service)
        r = self.registry
        info = Gauge("kitakyushu_service_info", "The service's version", ["version"], registry=r)
        info.labels(version or "unknown").set(1)
        self.http_requests = Counter(
            "kitakyushu_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "kitakyushu_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dependency_up = Gauge(
            "kitakyushu_dependency_up",
            "Whether the dependency answered the last check (1) or not (0)",
            ["dependency"],
            registry=r,
        )
        self.refresh_errors = Counter(
            "kitakyushu_metrics_refresh_errors",
            "Scrapes at which a gauge's source could not be read (the gauge kept its value)",
            ["source"],
            registry=r,
        )
        self._refreshers: dict[str, Refresher] = {}
        self._refreshed_at = 0.0
        self._min_refresh = min_refresh_seconds
        self._lock = asyncio.Lock()

    def refresh_with(self, source: str, refresher: Refresher) -> None:
        """Run `refresher` (it sets gauges) before each scrape."""
        self._refreshers[source] = refresher

    async def refresh(self, timeout: float = 5.0) -> None:
        async with self._lock:
            if time.monotonic() - self._refreshed_at < self._min_refresh:
                return
            sources = list(self._refreshers.items())
            results = await asyncio.gather(
                *(asyncio.wait_for(refresher(), timeout) for _, refresher in sources),
                return_exceptions=True,
            )
            for (source, _), result in zip(sources, results, strict=True):
                if isinstance(result, BaseException):
                    self.refresh_errors.labels(source).inc()
                    log.debug(
                        "metrics source failed", extra={"source": source, "error": repr(result)}
                    )
            self._refreshed_at = time.monotonic()

    async def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        await self.refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ServiceMetrics(HttpMetrics):
    """The metrics every event-driven service has; a service adds its own on `registry`."""

    def __init__(self, service: str, version: str = "", min_refresh_seconds: float = 2.0) -> None:
        super().__init__(service, version, min_refresh_seconds)
        r = self.registry
        self.events = Counter(
            "kitakyushu_consumer_events",
            "Messages handled by this service's consumer, by topic and outcome: applied, "
            "duplicate (already applied), dead-lettered, retried (a handler failure retried)",
            ["topic", "outcome"],
            registry=r,
        )
        self.transactions = Histogram(
            "kitakyushu_consumer_transaction_duration_seconds",
            "Time of one consumer transaction (a partition's batch, or one retried message)",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outages = Counter(
            "kitakyushu_consumer_outage_retries",
            "Consumer transactions retried because MongoDB or Kafka was unreachable",
            ["dependency"],
            registry=r,
        )
        self.transaction_conflicts = Counter(
            "kitakyushu_mongodb_transaction_conflicts",
            "Transactions run again because they lost a write race with another one (a "
            "conflict, not an outage: retried at once with a short jittered pause)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "kitakyushu_consumer_lag_messages",
            "Records of a consumed topic not yet committed by this service's consumer group",
            ["topic"],
            registry=r,
        )
        self.dlq_messages = Gauge(
            "kitakyushu_dlq_messages",
            "Records in the dead-letter topic of each topic this service consumes",
            ["topic"],
            registry=r,
        )
        self.outbox_unsent = Gauge(
            "kitakyushu_outbox_unsent_entries",
            "Outbox entries committed but not yet published to Kafka",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "kitakyushu_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox entry (0 when none waits)",
            registry=r,
        )
        self.outbox_unverified = Gauge(
            "kitakyushu_outbox_unverified_entries",
            "Published outbox entries whose read-back from the broker is still due",
            registry=r,
        )
        self.outbox_stuck = Gauge(
            "kitakyushu_outbox_relay_stuck",
            "1 while unsent entries have made no progress for OUTBOX_STUCK_SECONDS (liveness "
            "then fails and the pod restarts), else 0",
            registry=r,
        )
        self.outbox_published = Counter(
            "kitakyushu_outbox_published_entries",
            "Outbox entries the broker acknowledged",
            registry=r,
        )
        self.outbox_republished = Counter(
            "kitakyushu_outbox_republished_entries",
            "Outbox entries published again because the broker had lost them",
            registry=r,
        )
        # Series exist from the start (at 0), so that rules and rates see them before the
        # first event.
        for dependency in ("mongodb", "kafka"):
            self.outages.labels(dependency)


def set_per_label(gauge: Gauge, values: Mapping[str, float], known: set[str]) -> None:
    """Set one gauge series per label value; series no longer reported go to 0."""
    for label in known - set(values):
        gauge.labels(label).set(0)
    for label, value in values.items():
        gauge.labels(label).set(value)
    known |= set(values)
