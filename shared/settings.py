"""Configuration from the environment, with defaults that work for the embedded mode."""

from __future__ import annotations

import os
import socket
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

# HS256 keys shorter than the hash (32 bytes) can be brute-forced from one token.
MIN_JWT_SECRET_LENGTH = 32


class CommonSettings(BaseSettings):
    """Settings every service reads. Each field maps to an upper-case environment variable."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # retryWrites=false for the embedded SecantusDB: its retryable-write bookkeeping costs a
    # synced write per statement (measured: a single update 12 ms -> 7 ms). Our writes outside
    # transactions are retried by our own loops; point MONGODB_URI at a real replica set
    # without it.
    mongodb_uri: str = "mongodb://127.0.0.1:27018/?replicaSet=secantus&retryWrites=false"
    # Prepended to every topic name: lets several isolated deployments (or test runs) share
    # one Kafka cluster.
    kafka_topic_prefix: str = ""
    # Prepended to every consumer group id for the same reason.
    kafka_group_prefix: str = ""
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Topic configuration owned by the code (see shared/kafka.py TopicPolicy). -1 = forever.
    kafka_event_retention_ms: int = Field(default=-1, ge=-1)
    # contacts: an erased or superseded record is compacted away within this time, and the
    # tombstone itself leaves delete.retention.ms later (12 h + 12 h: within a day).
    kafka_contacts_max_compaction_lag_ms: int = Field(default=12 * 3600 * 1000, ge=60_000)
    kafka_contacts_delete_retention_ms: int = Field(default=12 * 3600 * 1000, ge=0)
    # Static group membership (KIP-345): unique per replica and stable across its restarts
    # (a pod or host name). Empty = dynamic membership.
    kafka_group_instance_id: str = Field(default_factory=socket.gethostname)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    # Pause after an empty fetch answered at once (the embedded broker does not hold them),
    # doubled after each further empty fetch up to the longest pause; data resets it.
    kafka_empty_fetch_pause_ms: float = Field(default=100, ge=0)
    kafka_empty_fetch_pause_max_ms: float = Field(default=800, ge=0, le=10_000)
    # On each partition assignment, read again up to this many records before the committed
    # offset (they are deduplicated): a broker that lost acknowledged writes in a crash (the
    # embedded one can) reuses their offsets, and a consumer whose commit survived would
    # otherwise skip what was written there since. 0 on Apache Kafka with acks=all.
    kafka_rewind_on_assign: int = Field(default=500, ge=0, le=1_000_000)

    jwt_secret: SecretStr | None = None
    # A second key accepted when checking tokens (never used to sign): lets the key change
    # without a 401 while pods roll (README, "Rotating the JWT secret").
    jwt_previous_secret: SecretStr | None = None
    jwt_issuer: str = "kitakyushu-internships"
    jwt_ttl_seconds: int = Field(default=8 * 3600, ge=60)
    # Tokens that claim to live longer (exp - iat) are refused: a leaked token expires soon.
    jwt_max_ttl_seconds: int = Field(default=12 * 3600, ge=60)

    http_host: str = "127.0.0.1"
    # Comma-separated addresses or CIDR ranges of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto uvicorn believes (the client's address and https): behind an Ingress,
    # its controllers' range, or every visitor is the proxy to per-client limits. "*" trusts
    # anyone (only when nothing else can reach the port).
    forwarded_allow_ips: str = "127.0.0.1"
    # Larger request bodies are refused with 413 before they are parsed or authenticated.
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The broker's largest message (Kafka's message.max.bytes; 1 MiB by default): a change
    # whose event would be larger is refused with 422 and never reaches the outbox.
    kafka_max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Where people reach the portal; e-mails link to pages under it (see README, URL scheme).
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_json: bool = True

    # The relay is woken after each commit; the poll only picks up what another replica or
    # a crashed process left.
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_batch_size: int = Field(default=200, ge=1)
    outbox_lease_seconds: float = Field(default=15, gt=0)
    # Read back what was published this long after the broker acknowledged it, and republish
    # what is missing (the embedded broker may lose its last second of acknowledged writes
    # on a crash). 0 = off (Apache Kafka with acks=all and replication can do without).
    outbox_verify_after_seconds: float = Field(default=10, ge=0)
    # Liveness fails when unsent entries have waited this long without any progress.
    outbox_stuck_seconds: float = Field(default=120, gt=0)
    consumer_batch_size: int = Field(default=200, ge=1)
    consumer_concurrency: int = Field(default=4, ge=1)
    consumer_max_attempts: int = Field(default=3, ge=1)
    consumer_retry_backoff_seconds: float = Field(default=0.2, ge=0)
    consumer_outage_backoff_max_seconds: float = Field(default=30, gt=0)
    # How long a transaction that keeps losing write conflicts is run again before its last
    # conflict is raised (PyMongo's own helper would retry for 120 s; see shared/mongo.py).
    mongo_transaction_seconds: float = Field(default=10, gt=0, le=120)

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

    def group_instance_id(self, name: str) -> str | None:
        if not self.kafka_group_instance_id:
            return None
        return f"{name}@{self.kafka_group_instance_id}"

    def require_jwt_secret(self) -> str:
        if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
            raise MissingSecretError(
                "JWT_SECRET is not set. `make run` generates one under .data/; "
                "in other deployments set it from your secret store."
            )
        secret = self.jwt_secret.get_secret_value()
        if len(secret) < MIN_JWT_SECRET_LENGTH:
            raise MissingSecretError(
                f"JWT_SECRET is too short ({len(secret)} characters); use at least "
                f"{MIN_JWT_SECRET_LENGTH} random characters, e.g. from "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        return secret


class MissingSecretError(RuntimeError):
    """The service cannot check tokens: it must not start (it would answer 500 to everyone)."""
