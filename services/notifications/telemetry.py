"""Traces and metrics of e-mail delivery, as hooks that delivery.py calls in two places
(the send, and the wiring in app.py), so that its logic stays its own.

- `sending(message, mailer)`: the span of one SMTP send, a child of the context stored with
  the message when its event was handled (`trace` in the message log), so the e-mail joins
  the trace of the request that caused it; its outcome is the span's status.
- `register(metrics, deliverer, store)`: `kitakyushu_deliveries_total{outcome}` from the
  deliverer's own counts (sent, retried, failed, suppressed), and at each scrape the open
  messages by status (pending, sending) and how overdue the most overdue pending one is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from opentelemetry.trace import Span, SpanKind
from prometheus_client import Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from services.notifications.store import Doc, NotificationsStore
from shared import tracing
from shared.metrics import ServiceMetrics

OPEN_STATUSES = ("pending", "sending")


class _Counting(Protocol):
    counts: dict[str, int]


class _Smtp(Protocol):
    @property
    def config(self) -> Any: ...


@contextmanager
def sending(message: Doc, mailer: _Smtp) -> Iterator[Span]:
    """Around `mailer.send(email)` for `message` (a document of the message log)."""
    config = mailer.config
    with (
        tracing.within(message.get("trace")),
        tracing.tracer().start_as_current_span(
            "smtp send",
            kind=SpanKind.CLIENT,
            attributes={
                "server.address": config.host,
                "server.port": config.port,
                "notification.message_id": message["_id"],
                "notification.template": message["template"],
                "notification.attempt": message["attempts"] + 1,
                "messaging.message.id": message["event_id"],
            },
        ) as span,
    ):
        yield span


class _DeliveryCounts(Collector):
    def __init__(self, deliverer: _Counting) -> None:
        self.deliverer = deliverer

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "kitakyushu_deliveries",
            "E-mail deliveries by outcome: sent (accepted by the SMTP server), retried (an "
            "attempt failed, another is planned), failed (given up, reported on the DLQ), "
            "suppressed (no longer wanted)",
            labels=["outcome"],
        )
        for outcome in ("sent", "retried", "failed", "suppressed"):
            family.add_metric([outcome], self.deliverer.counts.get(outcome, 0))
        yield family


def register(metrics: ServiceMetrics, deliverer: _Counting, store: NotificationsStore) -> None:
    metrics.registry.register(_DeliveryCounts(deliverer))
    open_messages = Gauge(
        "kitakyushu_deliveries_open",
        "Messages not yet delivered: pending (due now or later) or sending (claimed)",
        ["status"],
        registry=metrics.registry,
    )
    overdue = Gauge(
        "kitakyushu_deliveries_overdue_seconds",
        "How long the most overdue pending message has been due (0 when none is)",
        registry=metrics.registry,
    )

    async def refresh() -> None:
        now = datetime.now(UTC)
        for status in OPEN_STATUSES:
            open_messages.labels(status).set(
                await store.messages.count_documents({"status": status})
            )
        oldest = await store.messages.find_one(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            sort=[("next_attempt_at", 1)],
            projection=["next_attempt_at"],
        )
        overdue.set((now - oldest["next_attempt_at"]).total_seconds() if oldest else 0)

    metrics.refresh_with("deliveries", refresh)
