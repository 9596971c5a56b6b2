"""Kafka TLS/SASL and MongoDB credentials from settings reach the clients as their arguments."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from shared.connections import (
    kafka_client_options,
    kafka_security,
    mongo_client_options,
)
from shared.settings import CommonSettings


def settings(**values: object) -> CommonSettings:
    return CommonSettings.model_validate(values)


def test_defaults_add_nothing() -> None:
    plain = settings()
    assert kafka_security(plain) is None
    assert kafka_client_options(plain) == {}
    assert mongo_client_options(plain) == {}


async def test_sasl_ssl_reaches_the_kafka_clients() -> None:
    secure = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="applications",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=certifi.where(),
    )
    options = kafka_client_options(secure)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "applications"
    assert options["sasl_plain_password"] == "s3cret"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA file was loaded

    # aiokafka validates the combination when the client is built.
    producer = AIOKafkaProducer(bootstrap_servers="kafka.invalid:9093", **options)
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"

    # FastStream takes the same settings as its `security` and documents them in AsyncAPI.
    broker = KafkaBroker("kafka.invalid:9093", security=kafka_security(secure))
    spec = AsyncAPI(broker, title="t").to_specification().to_jsonable()
    server = next(iter(spec["servers"].values()))
    assert server["protocol"] == "kafka-secure"


def test_plain_sasl_without_tls() -> None:
    options = kafka_client_options(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "PLAIN"
    assert options["ssl_context"] is None


def test_tls_only() -> None:
    options = kafka_client_options(settings(kafka_security_protocol="SSL"))
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_needs_credentials() -> None:
    # Checked where a Kafka client is built (the portal shares the settings, not Kafka).
    half = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="only-a-name")
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        kafka_client_options(half)


def test_mongodb_credentials_and_tls_reach_the_client() -> None:
    options = mongo_client_options(
        settings(
            mongodb_username="matching",
            mongodb_password="pw",
            mongodb_auth_source="admin",
            mongodb_tls=True,
            mongodb_tls_ca_file=certifi.where(),
        )
    )
    assert options == {
        "username": "matching",
        "password": "pw",
        "authSource": "admin",
        "tls": True,
        "tlsCAFile": certifi.where(),
    }
    # PyMongo accepts them (it does not connect until first used).
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        "mongodb://mongo.invalid:27017/?replicaSet=rs0", **options
    )
    credentials = client.options.pool_options._credentials
    assert credentials is not None
    assert credentials.username == "matching" and credentials.source == "admin"


def test_mongodb_username_needs_password() -> None:
    with pytest.raises(ValidationError, match="MONGODB_USERNAME and MONGODB_PASSWORD"):
        settings(mongodb_username="applications")


def test_secrets_dir_supplies_secret_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As Kubernetes mounts a Secret: one file per key, values may end with a newline.
    (tmp_path / "JWT_SECRET").write_text("from-a-file-at-least-32-characters-long\n")
    (tmp_path / "MONGODB_USERNAME").write_text("notifications")
    (tmp_path / "MONGODB_PASSWORD").write_text("pw-from-file")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("MONGODB_USERNAME", raising=False)
    monkeypatch.delenv("MONGODB_PASSWORD", raising=False)
    loaded = CommonSettings()
    assert loaded.require_jwt_secret() == "from-a-file-at-least-32-characters-long"
    assert mongo_client_options(loaded)["password"] == "pw-from-file"

    # The environment wins over a file.
    monkeypatch.setenv("JWT_SECRET", "from-the-environment-at-least-32-characters")
    assert CommonSettings().require_jwt_secret() == "from-the-environment-at-least-32-characters"
