"""Traces with OpenTelemetry, from the HTTP request to the e-mail sent.

One trace follows a state change across the platform:

    POST /applications                       (FastAPI instrumentation, SERVER)
      applications.insert ...                (PyMongo instrumentation, CLIENT)
      create application-submitted           (the outbox entry, PRODUCER; its context is
                                              stored with the entry and sent as the Kafka
                                              headers `traceparent` / `tracestate`)
        process application-submitted        (each consumer, per message, CONSUMER; a child
                                              of the entry's context)
          notifications.update ...
          smtp send                          (services/notifications/telemetry.py, CLIENT;
                                              a child of the context stored with the message)

Two spans stand beside it, linked rather than nested, because they serve many traces at once:
the relay's `send` of a batch of outbox entries (links to each entry's `create`), and a
consumer's `transaction <topic>` (one MongoDB transaction per partition and poll, links to
each message's producer). That is the messaging semantic conventions' shape for batches.

Why by hand and not FastStream's Kafka telemetry middleware or the aiokafka
instrumentation: FastStream's middleware wraps FastStream subscribers and publishers, and
ours are neither (the consumer is our own aiokafka loop, the relay publishes stored records,
see shared/consumer.py); the aiokafka instrumentation would give every record the context of
the relay loop that sends it, not the request that wrote it, and a span per record received
rather than per handling.

Exporting is off unless asked for, with the standard variables: OTEL_TRACES_EXPORTER=otlp
(OTLP over HTTP/protobuf, OTEL_EXPORTER_OTLP_ENDPOINT etc.), `console` (spans as JSON on
stdout), `none` (the default here, where the specification's default is otlp: a service with
no collector must not log export errors). Trace ids exist either way and appear on the log
lines; OTEL_SDK_DISABLED=true turns tracing off altogether. OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER(_ARG) work as the specification says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER = "kitakyushu_internships"
# Kafka headers next to `traceparent`: the id of the HTTP request that caused the event.
REQUEST_ID_HEADER = "request-id"
_TRACE_HEADERS = ("traceparent", "tracestate")
# Accepted from X-Request-ID as it is; anything else is replaced by a generated id.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

# The request id of the HTTP request, or of the event, being handled (for logs and events).
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Only the W3C trace context crosses Kafka: a client's `baggage` header stays out of the
# event stream.
_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def configure_tracing(service: str, version: str) -> TracerProvider | None:
    """Install the process's tracer provider (once; later calls return it) and instrument
    PyMongo. Call before any MongoDB client is made: PyMongo's listeners apply to clients
    created after they are registered. None when OTEL_SDK_DISABLED is true."""
    global _provider
    if _provider is not None:
        return _provider
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    attributes: dict[str, Any] = {
        "service.namespace": "kitakyushu-internships",
        "service.version": version,
    }
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = service
    provider = TracerProvider(resource=Resource.create(attributes))
    for processor in _processors():
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _provider = provider
    _instrument_pymongo(provider)
    return provider


def tracer_provider() -> TracerProvider | None:
    return _provider


def _processors() -> list[SpanProcessor]:
    names = [
        n.strip().lower()
        for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")
        if n.strip()
    ]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp_exporter())
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    return [BatchSpanProcessor(e) for e in exporters]


def _otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol not in ("", "http/protobuf"):
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: the image ships the OTLP/HTTP exporter "
            "only (http/protobuf, port 4318)"
        )
    # Imported here: it pulls in protobuf, which a service without export does not need.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, ... from OTEL_EXPORTER_OTLP_*


def _instrument_pymongo(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument(tracer_provider=_InsideTraces(provider))


class _InsideTraces(trace.TracerProvider):
    """Tracers that only record spans inside a traced operation (a request, an event, a
    send). MongoDB commands outside one are the relay's and the sender's polls, several a
    second: a trace for each would drown the traces that matter."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _InsideTracer(self.provider.get_tracer(*args, **kwargs))


class _InsideTracer(trace.Tracer):
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return INVALID_SPAN
        return self.tracer.start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[Span]:
        span = self.start_span(name, context, *args, **kwargs)
        with trace.use_span(span, end_on_exit=True):
            yield span


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER)


# -- ids for logs and responses ------------------------------------------------------------


def accepted_request_id(value: str | None) -> str | None:
    """A client's X-Request-ID if it is a sane id (letters, digits, ._:@/+=-, at most 128)."""
    return value if value and _REQUEST_ID.match(value) else None


def trace_id_of(span: Span | None = None) -> str | None:
    context = (span or trace.get_current_span()).get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def trace_id_of_context(context: Context) -> str | None:
    return trace_id_of(trace.get_current_span(context))


def correlation_ids() -> dict[str, str]:
    """trace_id, span_id and request_id of what is being handled now (for log lines)."""
    ids: dict[str, str] = {}
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        ids["trace_id"] = trace.format_trace_id(context.trace_id)
        ids["span_id"] = trace.format_span_id(context.span_id)
    request_id = request_id_var.get()
    if request_id:
        ids["request_id"] = request_id
    return ids


@contextmanager
def request_id(value: str | None) -> Iterator[None]:
    """Make `value` the request id of the work done inside (log lines, events written)."""
    token = request_id_var.set(value)
    try:
        yield
    finally:
        request_id_var.reset(token)


# -- across Kafka ----------------------------------------------------------------------------


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the current trace context and request id with a record."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    request = request_id_var.get()
    if request:
        carrier[REQUEST_ID_HEADER] = request
    return carrier


def _header_map(
    headers: Iterable[tuple[str, bytes | str]] | Mapping[str, Any] | None,
) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    found: dict[str, str] = {}
    for key, value in items:
        if key in (*_TRACE_HEADERS, REQUEST_ID_HEADER) and value is not None:
            found[key] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return found


def context_from(headers: Iterable[tuple[str, bytes | str]] | Mapping[str, Any] | None) -> Context:
    """The trace context a record (or a stored carrier) was written in; empty if none."""
    return _propagator.extract(_header_map(headers), context=Context())


def request_id_from(
    headers: Iterable[tuple[str, bytes | str]] | Mapping[str, Any] | None,
) -> str | None:
    return accepted_request_id(_header_map(headers).get(REQUEST_ID_HEADER))


def link_to(context: Context) -> list[Link]:
    span_context = trace.get_current_span(context).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


@contextmanager
def creating(topic: str, event_id: str | None, key: str) -> Iterator[dict[str, str]]:
    """A `create` span for an outbox entry; yields the headers to store with it."""
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "create",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key,
    }
    if event_id:
        attributes["messaging.message.id"] = event_id
    with tracer().start_as_current_span(
        f"create {topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield outgoing_headers()


@contextmanager
def sending(entries: Sequence[Mapping[str, Any]]) -> Iterator[Span]:
    """The relay's `send` span for a batch of outbox entries, linked to each entry's
    `create` span (at most OTEL_SPAN_LINK_COUNT_LIMIT of them, 128 by default)."""
    links = [link for e in entries for link in link_to(context_from(e.get("headers")))]
    topics = sorted({str(e["topic"]) for e in entries})
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.batch.message_count": len(entries),
    }
    if len(topics) == 1:
        attributes["messaging.destination.name"] = topics[0]
    with tracer().start_as_current_span(
        "send" if len(topics) != 1 else f"send {topics[0]}",
        context=Context(),  # a span of its own: it serves many traces (see the links)
        kind=SpanKind.PRODUCER,
        links=links,
        attributes=attributes,
    ) as span:
        yield span


@contextmanager
def transaction(consumer: str, topic: str, records: Sequence[Any]) -> Iterator[Span]:
    """A consumer's span for one MongoDB transaction over a partition's batch, linked to
    each message's producer."""
    links = [link for r in records for link in link_to(context_from(r.headers))]
    first = records[0]
    with tracer().start_as_current_span(
        f"transaction {topic}",
        context=Context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": consumer,
            "messaging.destination.partition.id": str(first.partition),
            "messaging.kafka.offset": first.offset,
            "messaging.batch.message_count": len(records),
        },
    ) as span:
        yield span


@contextmanager
def processing(consumer: str, topic: str, record: Any, event_id: str | None) -> Iterator[Span]:
    """A consumer's span for one message, a child of the context it was produced in (so a
    trace goes on across Kafka), with the message's request id current inside."""
    batch = trace.get_current_span()
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": consumer,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
    }
    if event_id:
        attributes["messaging.message.id"] = event_id
    with (
        request_id(request_id_from(record.headers)),
        tracer().start_as_current_span(
            f"process {topic}",
            context=context_from(record.headers),
            kind=SpanKind.CONSUMER,
            links=[Link(batch.get_span_context())] if batch.get_span_context().is_valid else [],
            attributes=attributes,
            # The caller marks failures with `failed` (it knows the handler's own error).
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
    ):
        yield span


@contextmanager
def within(headers: Iterable[tuple[str, bytes | str]] | Mapping[str, Any] | None) -> Iterator[None]:
    """Make the context and request id stored in `headers` current (for work done later on
    behalf of a message, e.g. its dead-lettering)."""
    token = otel_context.attach(context_from(headers))
    try:
        with request_id(request_id_from(headers)):
            yield
    finally:
        otel_context.detach(token)


def failed(span: Span, error: BaseException) -> None:
    """Mark `span` failed with `error` (for failures handled without raising through it)."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
