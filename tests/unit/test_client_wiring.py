"""Every Kafka and MongoDB client the platform builds gets the connection security from the
settings: the services' MongoDB client, the producer, the consumer, the outbox verifier's
reader, the topic admin, the metrics' offset reader, and `make dlq`'s clients.

The constructors are replaced by recorders (nothing connects); the FastStream broker is
built for real (it never connects before it is started) and its AsyncAPI document shows the
secure protocol."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
from faststream.specification import AsyncAPI

from shared import consumer, dlq, kafka, mongo, outbox
from shared.events import PositionClosed
from shared.runtime import ServiceRuntime

SECURE = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.invalid:9093",
    "MONGODB_URI": "mongodb://mongo.invalid:27017/?replicaSet=rs0",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "applications",
    "KAFKA_SASL_PASSWORD": "kafka-pw",
    "MONGODB_USERNAME": "applications",
    "MONGODB_PASSWORD": "mongo-pw",
    "MONGODB_AUTH_SOURCE": "admin",
    "JWT_SECRET": "j" * 32,
}


class _Cluster:
    def partitions_for_topic(self, _topic: str) -> None:
        return None


def recorder(kind: str, calls: list[tuple[str, dict[str, Any]]]) -> type:
    """A stand-in for a client class: records its keyword arguments, connects nowhere."""

    async def metadata() -> _Cluster:
        return _Cluster()

    class Client:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append((kind, kwargs))
            self._client = SimpleNamespace(fetch_all_metadata=metadata)

        async def start(self) -> None: ...

        async def stop(self) -> None: ...

        async def close(self) -> None: ...

        async def topics(self) -> set[str]:
            return set()

        async def list_topics(self) -> list[str]:
            return []

        async def create_topics(self, _new: Any) -> Any:
            return SimpleNamespace(topic_errors=[])

        async def describe_configs(self, _resources: Any) -> list[Any]:
            return []

    return Client


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    for name, value in SECURE.items():
        monkeypatch.setenv(name, value)
    recorded: list[tuple[str, dict[str, Any]]] = []
    real_mongo_client = mongo.AsyncMongoClient

    def mongo_client(*args: Any, **kwargs: Any) -> Any:  # a real client: it connects lazily
        recorded.append(("mongo", kwargs))
        return real_mongo_client(*args, **kwargs)

    monkeypatch.setattr(mongo, "AsyncMongoClient", mongo_client)
    monkeypatch.setattr(kafka, "AIOKafkaProducer", recorder("producer", recorded))
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", recorder("admin", recorded))
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", recorder("offsets reader", recorded))
    monkeypatch.setattr(consumer, "AIOKafkaConsumer", recorder("consumer", recorded))
    monkeypatch.setattr(outbox, "AIOKafkaConsumer", recorder("verifier", recorded))
    monkeypatch.setattr(dlq, "AIOKafkaConsumer", recorder("dlq reader", recorded))
    monkeypatch.setattr(dlq, "AIOKafkaProducer", recorder("dlq producer", recorded))
    return recorded


def assert_secure_kafka(kind: str, kwargs: dict[str, Any]) -> None:
    assert kwargs.get("security_protocol") == "SASL_SSL", kind
    assert kwargs.get("sasl_mechanism") == "SCRAM-SHA-512", kind
    assert kwargs.get("sasl_plain_username") == "applications", kind
    assert kwargs.get("sasl_plain_password") == "kafka-pw", kind
    assert kwargs.get("ssl_context") is not None, kind


async def test_every_client_of_a_service_gets_the_security_settings(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    from services.applications.app import ApplicationsSettings

    runtime = ServiceRuntime(
        name="applications",
        settings=ApplicationsSettings(),
        database="applications",
        publishes=[PositionClosed],
    )

    async def ignore(*_: Any) -> None: ...

    runtime.consumes("position-published", ignore)
    try:
        await runtime.producer.start()
        await runtime.ensure_topics()
        runtime.consumer._new_consumer()
        await runtime.relay._reader_consumer()
        await runtime.offsets.sizes({"t": "t"})
    finally:
        await runtime.client.close()

    kinds = {kind for kind, _ in calls}
    assert kinds == {"mongo", "producer", "admin", "consumer", "verifier", "offsets reader"}
    for kind, kwargs in calls:
        if kind == "mongo":
            assert kwargs["username"] == "applications"
            assert kwargs["password"] == "mongo-pw"
            assert kwargs["authSource"] == "admin"
        else:
            assert_secure_kafka(kind, kwargs)

    # FastStream's broker (never started; it documents the channels) has the security too.
    spec = AsyncAPI(runtime.broker, title="t").to_specification().to_jsonable()
    assert {s["protocol"] for s in spec["servers"].values()} == {"kafka-secure"}


async def test_make_dlq_uses_the_security_settings(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    out = io.StringIO()
    assert await dlq.main(["list"], out=out) == 0
    assert "0 dead-lettered record(s)" in out.getvalue()
    listed = [(kind, kwargs) for kind, kwargs in calls if kind == "dlq reader"]
    assert len(listed) == 2  # the topic listing and the reading
    for kind, kwargs in listed:
        assert_secure_kafka(kind, kwargs)

    calls.clear()
    out = io.StringIO()
    assert await dlq.main(["redrive", "--topic", "position-closed", "--all"], out=out) == 0
    assert "0 record(s) redriven" in out.getvalue()
    assert {kind for kind, _ in calls} == {"dlq reader", "dlq producer"}
    for kind, kwargs in calls:
        assert_secure_kafka(kind, kwargs)
