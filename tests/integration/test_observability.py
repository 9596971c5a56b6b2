"""What an operator sees, against the real Kafka, MongoDB and SMTP sink with the three
services running: one trace from `POST /applications` to the e-mail sent, the request id on
the access log and on every service's event lines, metrics that move when an application
flows through (and when a message is a duplicate or goes to the DLQ), every metric that the
alert rules and the dashboard name, and health that degrades without Kafka."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from deploy.embedded.processes import free_port
from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from shared.auth import Role
from shared.logs import CorrelationIds
from shared.runtime import VERSION
from shared.tracing import configure_tracing
from tests.driver import ApplicationsDriver
from tests.infra import Infra, TopicReader, eventually, read_mailbox, running

pytestmark = pytest.mark.integration

TAG = f"obs{uuid.uuid4().hex[:6]}"  # nothing from an earlier run in its topics
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("applications", "matching", "notifications")
APPLIED = {"topic": "application-submitted", "outcome": "applied"}


@dataclass
class Platform:
    apps: ApplicationsDriver
    clients: dict[str, httpx.AsyncClient]
    infra: Infra
    spans: InMemorySpanExporter
    notifications: NotificationsSettings

    def topic(self, name: str) -> str:
        return self.notifications.topic(name)

    def mail_to(self, address: str) -> list[EmailMessage]:
        assert self.infra.mailbox is not None
        return [m for m in read_mailbox(self.infra.mailbox) if address in str(m["To"])]

    async def scrape(self, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of a service's /metrics: (name, sorted labels) -> value."""
        response = await self.clients[service].get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                assert sample.labels.get("service") == service, sample
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "service"))
                samples[(sample.name, labels)] = sample.value
        return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
async def platform(infra: Infra) -> AsyncIterator[Platform]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read what was sent")
    provider = configure_tracing("tests", VERSION)
    if provider is None:
        pytest.skip("OTEL_SDK_DISABLED is set")
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    notifications = infra.settings(
        NotificationsSettings,
        tag=TAG,
        database=f"{TAG}_notifications",
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        delivery_poll_seconds=0.2,
    )
    try:
        async with (
            running(
                create_applications(
                    infra.settings(ApplicationsSettings, tag=TAG, database=f"{TAG}_applications")
                )
            ) as apps,
            running(
                create_matching(
                    infra.settings(MatchingSettings, tag=TAG, database=f"{TAG}_matching")
                )
            ) as matching,
            running(create_notifications(notifications)) as notify,
        ):
            yield Platform(
                ApplicationsDriver(apps, infra),
                {"applications": apps, "matching": matching, "notifications": notify},
                infra,
                spans,
                notifications,
            )
    finally:
        spans.shutdown()  # the provider outlives the module: stop keeping its spans


def in_trace(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def one(spans: list[ReadableSpan], name: str, **attributes: Any) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, (name, attributes, [(s.name, s.attributes) for s in spans])
    return found[0]


async def test_one_trace_from_post_applications_to_the_email_sent(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(CorrelationIds())
    d = platform.apps
    cohort = await d.cohort()
    company = await d.company()
    position = await d.position(company, cohort)
    student = await d.student()
    response = await d.client.post(
        "/applications",
        headers={**d.auth(Role.STUDENT, student), "X-Request-ID": "req-obs-0001"},
        json={"cohort_id": cohort, "ranked_position_ids": [position], "motivation": "Hello."},
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == "req-obs-0001"
    address = f"{student}@example.tw"
    await eventually(lambda: platform.mail_to(address), timeout=60)
    (mail,) = platform.mail_to(address)

    # The request's server span starts the trace.
    server = one(platform.spans.get_finished_spans(), "POST /applications")
    assert server.kind is SpanKind.SERVER and server.parent is None
    assert server.attributes is not None
    assert server.attributes["http.request.id"] == "req-obs-0001"
    assert server.context is not None
    trace_id = server.context.trace_id

    async def smtp_span() -> ReadableSpan | None:
        sends = in_trace(platform.spans.get_finished_spans(), trace_id)
        return next((s for s in sends if s.name == "smtp send"), None)

    send = await eventually(smtp_span, timeout=30)
    spans = in_trace(platform.spans.get_finished_spans(), trace_id)
    by_id = {s.context.span_id: s for s in spans if s.context is not None}

    def chain(span: ReadableSpan) -> list[str]:
        """The names from `span` up to the root of the trace."""
        names = [span.name]
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    # The e-mail's send is a child of the notifications service's handling of the event,
    # which is a child of the outbox entry's creation inside the request.
    assert chain(send) == [
        "smtp send",
        "process application-submitted",
        "create application-submitted",
        "POST /applications",
    ]
    assert send.kind is SpanKind.CLIENT and send.status.status_code is not StatusCode.ERROR
    assert send.attributes is not None
    assert send.attributes["messaging.message.id"] == mail["X-Event-Id"]
    assert send.attributes["notification.template"] == mail["X-Template"]
    create = one(spans, "create application-submitted")
    assert create.kind is SpanKind.PRODUCER
    assert create.attributes is not None
    assert create.attributes["messaging.message.id"] == mail["X-Event-Id"]
    # Both consumers of the event continue the trace; MongoDB commands are in it too. The
    # two services consume independently: matching may still be on its way when the mail
    # has gone out, so its span is waited for.
    consumers = {platform.notifications.group(n) for n in ("matching", "notifications")}

    def consumer_groups() -> set[Any]:
        return {
            (s.attributes or {}).get("messaging.consumer.group.name")
            for s in in_trace(platform.spans.get_finished_spans(), trace_id)
            if s.name == "process application-submitted"
        }

    await eventually(lambda: consumer_groups() >= consumers, timeout=30)
    assert consumer_groups() == consumers
    spans = in_trace(platform.spans.get_finished_spans(), trace_id)
    assert any((s.attributes or {}).get("db.system") == "mongodb" for s in spans)
    # The relay's send and each consumer transaction are spans of their own, linked to it.
    linked = [
        s.name
        for s in platform.spans.get_finished_spans()
        if any(link.context.span_id == create.context.span_id for link in s.links)  # type: ignore[union-attr]
    ]
    assert "send application-submitted" in linked
    assert linked.count("transaction application-submitted") >= 2

    # The Kafka record carries the context and the request id, in structured mode.
    async with TopicReader(
        platform.infra.kafka_bootstrap, platform.topic("application-submitted")
    ) as reader:
        records = await reader.wait_for(
            lambda rs: any(json.loads(r.value)["id"] == mail["X-Event-Id"] for r in rs)
        )
    (record,) = [r for r in records if json.loads(r.value)["id"] == mail["X-Event-Id"]]
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    assert headers["request-id"] == b"req-obs-0001"
    traceparent = headers["traceparent"].decode()
    assert traceparent.split("-")[1] == trace.format_trace_id(trace_id)
    assert not any(k.startswith("ce_") for k in headers)

    # The access log line and every service's line about the event name the same ids.
    hex_id = trace.format_trace_id(trace_id)
    access = [
        r
        for r in caplog.records
        if r.name == "access" and getattr(r, "route", "") == "/applications"
    ]
    assert [(r.request_id, r.trace_id, r.status) for r in access] == [  # type: ignore[attr-defined]
        ("req-obs-0001", hex_id, 201)
    ]
    handled = [
        r
        for r in caplog.records
        if r.getMessage() == "event handled" and getattr(r, "event_id", None) == mail["X-Event-Id"]
    ]
    assert {r.consumer for r in handled} == {"matching", "notifications"}  # type: ignore[attr-defined]
    assert {(r.trace_id, r.request_id) for r in handled} == {(hex_id, "req-obs-0001")}  # type: ignore[attr-defined]
    # The delivery's line too (the logging filter adds the ids of what is being handled).
    (line,) = [
        r
        for r in caplog.records
        if r.getMessage() == "message sent"
        and str(getattr(r, "message_id", "")).startswith(mail["X-Event-Id"])
    ]
    assert (line.trace_id, line.request_id) == (hex_id, "req-obs-0001")  # type: ignore[attr-defined]


async def test_a_generated_request_id_when_none_or_a_bad_one_is_given(platform: Platform) -> None:
    client = platform.clients["matching"]
    generated = (await client.get("/health/live")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    bad = (await client.get("/health/live", headers={"X-Request-ID": "a b\tc" * 40})).headers
    assert re.fullmatch(r"[0-9a-f]{32}", bad["x-request-id"])
    kept = (await client.get("/health/live", headers={"X-Request-ID": "portal-42"})).headers
    assert kept["x-request-id"] == "portal-42"


async def test_metrics_move_when_an_application_flows_through(platform: Platform) -> None:
    before = {s: await platform.scrape(s) for s in SERVICES}
    d = platform.apps
    cohort = await d.cohort()
    company = await d.company()
    position = await d.position(company, cohort)
    student = await d.student()
    await d.apply(student, cohort, [position])
    await eventually(lambda: platform.mail_to(f"{student}@example.tw"), timeout=60)

    async def caught_up() -> dict[str, Any] | None:
        after = {s: await platform.scrape(s) for s in SERVICES}
        lag = [
            value(after[s], "kitakyushu_consumer_lag_messages", topic="application-submitted")
            for s in ("matching", "notifications")
        ]
        sent = value(after["notifications"], "kitakyushu_deliveries_total", outcome="sent")
        done = sent > value(before["notifications"], "kitakyushu_deliveries_total", outcome="sent")
        # Gauges are read at scrape time, at most every few seconds: wait for them too.
        drained = (
            value(after["applications"], "kitakyushu_outbox_unsent_entries") == 0
            and value(after["notifications"], "kitakyushu_deliveries_open", status="pending") == 0
        )
        applied = [
            value(after[s], "kitakyushu_consumer_events_total", **APPLIED)
            > value(before[s], "kitakyushu_consumer_events_total", **APPLIED)
            for s in ("matching", "notifications")
        ]
        return after if lag == [0, 0] and done and drained and all(applied) else None

    after = await eventually(caught_up, timeout=60, interval=1)
    apps, notify, match = after["applications"], after["notifications"], after["matching"]

    # HTTP: the application's POST, counted by route template and status, and timed.
    post = {"method": "POST", "route": "/applications", "status": "201"}
    assert (
        value(apps, "kitakyushu_http_requests_total", **post)
        == value(before["applications"], "kitakyushu_http_requests_total", **post) + 1
    )
    timed = {"method": "POST", "route": "/applications"}
    assert value(apps, "kitakyushu_http_request_duration_seconds_count", **timed) >= 1
    assert value(apps, "kitakyushu_http_request_duration_seconds_sum", **timed) > 0
    # The outbox: published (the company, its approval, the position, the student, the
    # application: at least five entries), nothing left waiting.
    assert (
        value(apps, "kitakyushu_outbox_published_entries_total")
        >= value(before["applications"], "kitakyushu_outbox_published_entries_total") + 5
    )
    assert value(apps, "kitakyushu_outbox_unsent_entries") == 0
    assert value(apps, "kitakyushu_outbox_oldest_unsent_age_seconds") == 0
    assert ("kitakyushu_outbox_relay_stuck", ()) in apps
    assert value(apps, "kitakyushu_outbox_relay_stuck") == 0
    # Both consumers applied the event; the DLQ is empty.
    applied = {"topic": "application-submitted", "outcome": "applied"}
    for service, samples in (("matching", match), ("notifications", notify)):
        assert (
            value(samples, "kitakyushu_consumer_events_total", **applied)
            == value(before[service], "kitakyushu_consumer_events_total", **applied) + 1
        ), service
        assert value(samples, "kitakyushu_dlq_messages", topic="application-submitted.dlq") == 0
        assert (
            "kitakyushu_consumer_transaction_duration_seconds_count",
            (("topic", "application-submitted"),),
        ) in samples
    # The student's confirmation went out; nothing waits.
    assert value(notify, "kitakyushu_deliveries_open", status="pending") == 0
    assert value(notify, "kitakyushu_deliveries_overdue_seconds") == 0

    # A round: timed by outcome.
    await d.close(cohort)

    async def round_runs() -> bool:
        headers = d.auth(Role.COORDINATOR, "c")
        r = await platform.clients["matching"].post(
            "/rounds", headers=headers, json={"cohort_id": cohort, "seed": 7}
        )
        return r.status_code == 201

    await eventually(round_runs, timeout=30, interval=0.5)  # until matching hears of the close
    rounds = await platform.scrape("matching")
    completed = {"outcome": "completed"}
    assert value(rounds, "kitakyushu_matching_round_duration_seconds_count", **completed) == 1
    assert value(rounds, "kitakyushu_matching_round_duration_seconds_sum", **completed) > 0


async def test_duplicates_and_dead_letters_are_counted(platform: Platform) -> None:
    """A redelivered event counts as a duplicate, a malformed one as dead-lettered (and the
    DLQ gauge grows)."""
    topic = platform.topic("application-submitted")
    async with TopicReader(platform.infra.kafka_bootstrap, topic) as reader:
        (first, *_) = await reader.wait_for(lambda rs: len(rs) >= 1)
    before = await platform.scrape("notifications")
    bad = f"bad-{uuid.uuid4()}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value=first.value, key=first.key, headers=list(first.headers)
        )
        await producer.send_and_wait(topic, value=b'{"not": "an event"}', key=bad)
    finally:
        await producer.stop()

    def moved(samples: dict[Any, float], outcome: str) -> float:
        labels = {"topic": "application-submitted", "outcome": outcome}
        return value(samples, "kitakyushu_consumer_events_total", **labels) - value(
            before, "kitakyushu_consumer_events_total", **labels
        )

    async def counted() -> dict[Any, float] | None:
        now = await platform.scrape("notifications")
        return now if moved(now, "duplicate") == 1 and moved(now, "dead-lettered") == 1 else None

    await eventually(counted, timeout=30, interval=0.5)
    # The DLQ gauge is read from Kafka at scrape time (at most every few seconds), and the
    # DLQ keeps what earlier runs parked there: it must come to what the topic holds.
    async with TopicReader(platform.infra.kafka_bootstrap, dlq_topic_name := topic + ".dlq") as dlq:
        parked = await dlq.wait_for(lambda rs: any(r.key == bad for r in rs))
    assert dlq_topic_name.endswith("application-submitted.dlq")

    async def dead_letters_counted() -> float | None:
        now = await platform.scrape("notifications")
        size = value(now, "kitakyushu_dlq_messages", topic="application-submitted.dlq")
        return size if size == len(parked) else None

    assert await eventually(dead_letters_counted, timeout=30, interval=0.5) >= 1


async def test_every_metric_in_the_alert_rules_and_dashboard_is_exposed(
    platform: Platform,
) -> None:
    exposed = set()
    for service in SERVICES:
        exposed |= {name for name, _ in await platform.scrape(service)}
    files = [ROOT / "deploy/monitoring/alerts.yaml", ROOT / "deploy/monitoring/dashboard.json"]
    named = {m for f in files for m in re.findall(r"\bkitakyushu_[a-z_]+\b", f.read_text())}
    assert len(named) >= 10
    assert named - exposed == set()


async def test_readiness_needs_mongodb_and_reports_kafka(platform: Platform) -> None:
    for service, client in platform.clients.items():
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] is True and body["mongodb"] is True and body["kafka"] is True
        assert (body["status"], body["degraded"], body["service"]) == ("ready", [], service)
        live = await client.get("/health/live")
        assert live.status_code == 200
        assert live.json() == {
            "status": "ok",
            "service": service,
            "alive": True,
            "outbox_stuck": False,
            "loops_died": [],
        }
        samples = await platform.scrape(service)
        assert value(samples, "kitakyushu_dependency_up", dependency="mongodb") == 1
        assert value(samples, "kitakyushu_dependency_up", dependency="kafka") == 1


async def test_without_kafka_a_service_is_ready_degraded_and_takes_writes(infra: Infra) -> None:
    """Readiness needs MongoDB only: with Kafka away the API goes on taking writes into the
    outbox, and the metrics show them waiting."""
    settings = infra.settings(
        ApplicationsSettings,
        tag="obsnokafka",
        database=f"{TAG}_nokafka_applications",
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
    )
    async with running(create_applications(settings)) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert (body["ready"], body["status"], body["mongodb"], body["kafka"]) == (
            True,
            "degraded",
            True,
            False,
        )
        assert "kafka" in body["degraded"]
        assert (await client.get("/health/live")).status_code == 200
        company = await ApplicationsDriver(client, infra).company(approve=False)
        assert company

        async def waiting() -> dict[Any, float] | None:
            response = await client.get("/metrics")
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(response.text)
                for s in f.samples
            }
            unsent = samples[("kitakyushu_outbox_unsent_entries", (("service", "applications"),))]
            age = samples[
                ("kitakyushu_outbox_oldest_unsent_age_seconds", (("service", "applications"),))
            ]
            return samples if unsent >= 1 and age > 0 else None  # the company registered

        samples = await eventually(waiting, timeout=20, interval=0.5)
        assert (
            samples[
                ("kitakyushu_dependency_up", (("dependency", "kafka"), ("service", "applications")))
            ]
            == 0
        )
