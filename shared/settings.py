"""Configuration from the environment, with defaults that work for the embedded mode."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# HS256 keys shorter than the hash (32 bytes) can be brute-forced from one token.
MIN_JWT_SECRET_LENGTH = 32


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
    # Tokens that claim to live longer (exp - iat) are refused: a leaked token expires soon.
    jwt_max_ttl_seconds: int = Field(default=12 * 3600, ge=60)

    http_host: str = "127.0.0.1"
    # Larger request bodies are refused with 413 before they are parsed or authenticated.
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The broker's largest message (Kafka's message.max.bytes; 1 MiB by default): a change
    # whose event would be larger is refused with 422 and never reaches the outbox.
    kafka_max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    log_level: str = "INFO"
    log_json: bool = True

    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_batch_size: int = Field(default=200, ge=1)
    consumer_max_attempts: int = Field(default=3, ge=1)
    consumer_retry_backoff_seconds: float = Field(default=0.2, ge=0)

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    def group(self, name: str) -> str:
        return f"{self.kafka_group_prefix}{name}"

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
