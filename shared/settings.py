"""Configuration from the environment, with defaults that work for the embedded mode."""

from __future__ import annotations

import os
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)


class CommonSettings(BaseSettings):
    """Settings every service reads. Each field maps to an upper-case environment variable."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    mongodb_uri: str = "mongodb://127.0.0.1:27018/?replicaSet=secantus"
    # Prepended to every topic name: lets several isolated deployments (or test runs) share
    # one Kafka cluster.
    kafka_topic_prefix: str = ""
    # Prepended to every consumer group id for the same reason.
    kafka_group_prefix: str = ""
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)

    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "kitakyushu-internships"
    jwt_ttl_seconds: int = Field(default=8 * 3600, ge=60)

    http_host: str = "127.0.0.1"
    # Where people reach the portal; e-mails link to pages under it (see README, URL scheme).
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_json: bool = True

    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_batch_size: int = Field(default=200, ge=1)
    consumer_max_attempts: int = Field(default=3, ge=1)
    consumer_retry_backoff_seconds: float = Field(default=0.2, ge=0)

    # Kafka connection security: PLAINTEXT for the embedded broker; SSL or SASL_SSL for a real
    # cluster. shared.connections turns these into the clients' arguments.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # PEM files: the cluster's CA (the system's CAs when unset) and, for mutual TLS, the
    # client's certificate and key.
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    # MongoDB credentials and TLS, kept out of MONGODB_URI so that the URI can live in plain
    # configuration and the password in a secret. Unset: whatever MONGODB_URI says.
    mongodb_username: str | None = None
    mongodb_password: SecretStr | None = None
    mongodb_auth_source: str | None = None
    mongodb_tls: bool = False
    mongodb_tls_ca_file: str | None = None
    mongodb_tls_certificate_key_file: str | None = None

    @model_validator(mode="after")
    def _credentials_complete(self) -> Self:
        # (Kafka's SASL credentials are checked where a Kafka client is built: the portal
        # shares the configuration but not Kafka.)
        if bool(self.mongodb_username) != bool(self.mongodb_password):
            raise ValueError("set MONGODB_USERNAME and MONGODB_PASSWORD together")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # SECRETS_DIR: a directory with one file per setting (JWT_SECRET, MONGODB_PASSWORD, ...),
        # as Kubernetes mounts a Secret, so that secrets need not sit in the environment.
        # The environment still wins over a file.
        secrets_dir = os.environ.get("SECRETS_DIR")
        if not secrets_dir:
            return (init_settings, env_settings, dotenv_settings)
        files = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
        return (init_settings, env_settings, dotenv_settings, files)

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    def group(self, name: str) -> str:
        return f"{self.kafka_group_prefix}{name}"

    def require_jwt_secret(self) -> str:
        if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
            raise RuntimeError(
                "JWT_SECRET is not set. `make run` generates one under .data/; "
                "in other deployments set it from your secret store."
            )
        return self.jwt_secret.get_secret_value()
