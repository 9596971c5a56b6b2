"""Connection security for the Kafka and MongoDB clients, from settings.

One place turns KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* and MONGODB_USERNAME /
MONGODB_PASSWORD / MONGODB_TLS* into what the clients take, so that every client a service
builds (FastStream's broker, the outbox producer, the topic admin, PyMongo) connects the same
way. With the defaults (the embedded servers) every helper returns "nothing extra".
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import CommonSettings

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def kafka_ssl_context(settings: CommonSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (hostname checked, CA from KAFKA_SSL_CAFILE or the
    system's), or None for a plaintext connection."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    return create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )


def kafka_security(settings: CommonSettings) -> BaseSecurity | None:
    """For FastStream: `KafkaBroker(..., security=kafka_security(settings))` (it also puts the
    security scheme into the AsyncAPI document)."""
    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise ValueError(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    return _SASL[settings.kafka_sasl_mechanism](
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


def kafka_client_options(settings: CommonSettings) -> dict[str, Any]:
    """For aiokafka's own clients (producer, consumer, admin): keyword arguments, the same
    mapping FastStream applies to its broker. Empty for PLAINTEXT."""
    return parse_security(kafka_security(settings))


def mongo_client_options(settings: CommonSettings) -> dict[str, Any]:
    """For `AsyncMongoClient(uri, **mongo_client_options(settings))`: only what is set, so
    that options in MONGODB_URI stay in force otherwise."""
    options: dict[str, Any] = {}
    if settings.mongodb_username and settings.mongodb_password:
        options["username"] = settings.mongodb_username
        options["password"] = settings.mongodb_password.get_secret_value()
    if settings.mongodb_auth_source:
        options["authSource"] = settings.mongodb_auth_source
    if settings.mongodb_tls:
        options["tls"] = True
    if settings.mongodb_tls_ca_file:
        options["tlsCAFile"] = settings.mongodb_tls_ca_file
    if settings.mongodb_tls_certificate_key_file:
        options["tlsCertificateKeyFile"] = settings.mongodb_tls_certificate_key_file
    return options
