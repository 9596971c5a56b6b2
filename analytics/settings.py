"""Where the analytics subscriber reads from and lands to (environment variables; the
defaults follow `make run`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from shared.settings import CommonSettings


def _default_database() -> Path:
    return Path(os.environ.get("EMBEDDED_DATA_DIR", ".data")) / "analytics.duckdb"


class AnalyticsSettings(CommonSettings):
    """KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX, KAFKA_GROUP_PREFIX and the Kafka security
    settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*) as for the services."""

    duckdb_path: Path = Field(default_factory=_default_database, alias="ANALYTICS_DUCKDB_PATH")
    # Its own consumer group (prefixed with KAFKA_GROUP_PREFIX): its committed offsets say how
    # far it has landed; a new group starts from the beginning of every topic.
    # Also write the landed events as Parquet files there after each run (None: DuckDB only).
    parquet_dir: Path | None = Field(default=None, alias="ANALYTICS_PARQUET_DIR")
    group_name: str = Field(default="analytics", alias="ANALYTICS_GROUP")
    poll_timeout_ms: int = Field(default=500, ge=10, alias="ANALYTICS_POLL_TIMEOUT_MS")
    batch_size: int = Field(default=1000, ge=1, alias="ANALYTICS_BATCH_SIZE")
