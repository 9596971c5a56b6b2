"""Tracing configuration from the standard OTEL_* variables, and the trace context and
request id that travel with a record (shared/tracing.py); no server involved."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from shared import tracing


@pytest.mark.parametrize("value", [None, "none", " NONE "])
def test_no_exporter_unless_asked(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert tracing._processors() == []


def test_console_and_otlp_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    processors = tracing._processors()
    try:
        assert [type(p) for p in processors] == [BatchSpanProcessor, BatchSpanProcessor]
        exporters = [p.span_exporter for p in processors]  # type: ignore[attr-defined]
        assert isinstance(exporters[0], ConsoleSpanExporter)
        assert type(exporters[1]).__name__ == "OTLPSpanExporter"
    finally:
        for processor in processors:
            processor.shutdown()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
)
def test_unsupported_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=value):
        tracing._processors()


@pytest.mark.parametrize(
    ("given", "accepted"),
    [
        ("portal-42", "portal-42"),
        ("0f9c:req/1+a=b@x", "0f9c:req/1+a=b@x"),
        ("a b", None),
        ("x" * 129, None),
        ("", None),
        (None, None),
        ("bad\nline", None),
    ],
)
def test_request_ids_accepted(given: str | None, accepted: str | None) -> None:
    assert tracing.accepted_request_id(given) == accepted


def test_context_and_request_id_cross_a_record() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("request") as span:
        with tracing.request_id("req-7"):
            headers = tracing.outgoing_headers()
        expected = span.get_span_context()
    assert headers["request-id"] == "req-7"
    assert headers["traceparent"].split("-")[1] == trace.format_trace_id(expected.trace_id)
    # As Kafka gives them back: (name, bytes) pairs, with others beside them.
    record = [(k, v.encode()) for k, v in headers.items()] + [
        ("event-type", b"x"),
        ("baggage", b"k=v"),
    ]
    context = tracing.context_from(record)
    assert tracing.trace_id_of_context(context) == trace.format_trace_id(expected.trace_id)
    assert tracing.request_id_from(record) == "req-7"
    assert tracing.link_to(context)[0].context.span_id == expected.span_id
    # A record without headers has no context: a new trace starts there.
    assert tracing.trace_id_of_context(tracing.context_from(None)) is None
    assert tracing.link_to(tracing.context_from([])) == []
    assert tracing.request_id_from([("request-id", b"no spaces allowed")]) is None
