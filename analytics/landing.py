"""The DuckDB file the events land in: one row per event, keyed by its id, so that a
redelivered or replayed event is stored once; what could not be read is kept aside with the
reason, never dropped silently.

Analysts query it with SQL as well (`duckdb.connect(".data/analytics.duckdb", read_only=True)`):
`events` holds the CloudEvent envelopes (`envelope->>'$.data.cohort_id'`, ...), `rejected`
what was refused. `export_parquet` writes the events as Parquet files, one folder per event
type (Hive partitioning, `type=match-proposed/`), for a warehouse or any Parquet reader;
`parquet_events` reads them back, so the KPIs can be computed from those files alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from shared.events import CloudEvent, parse_event

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id UUID PRIMARY KEY,
    type VARCHAR NOT NULL,          -- the catalog name, e.g. match-proposed
    subject VARCHAR NOT NULL,       -- the aggregate id (the Kafka key)
    time TIMESTAMPTZ NOT NULL,      -- when it happened (the envelope's time)
    cohort_id VARCHAR,
    topic VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    envelope JSON NOT NULL          -- the whole CloudEvent, as published
);
CREATE TABLE IF NOT EXISTS rejected (
    topic VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    value BLOB,
    PRIMARY KEY (topic, "partition", "offset")
);
"""


@dataclass(frozen=True)
class Message:
    topic: str  # without the deployment's prefix
    partition: int
    offset: int
    value: bytes | None


@dataclass
class Landed:
    events: int = 0
    rejected: int = 0


class Landing:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(path))
        self.db.execute(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def land(self, messages: Iterable[Message]) -> Landed:
        """Store a batch in one transaction (the caller commits the Kafka offsets after it):
        new events once, repeats ignored, unreadable messages set aside with the reason."""
        landed = Landed()
        rows: list[list[Any]] = []
        refused: list[list[Any]] = []
        for m in messages:
            try:
                if m.value is None:
                    raise ValueError("a tombstone (no value) on a public topic")
                event = parse_event(m.value, expected=m.topic)
            except ValueError as exc:
                refused.append([m.topic, m.partition, m.offset, str(exc)[:2000], m.value])
                continue
            rows.append(
                [
                    str(event.id),
                    event.name,
                    event.subject,
                    event.time,
                    getattr(event.data, "cohort_id", None),
                    m.topic,
                    m.partition,
                    m.offset,
                    m.value.decode(),
                ]
            )
        with self.transaction() as db:
            before = _count(db, "events")
            if rows:
                db.executemany(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
            if refused:
                db.executemany("INSERT OR IGNORE INTO rejected VALUES (?, ?, ?, ?, ?)", refused)
            landed.events = _count(db, "events") - before
        landed.rejected = len(refused)
        return landed

    def events(self) -> list[CloudEvent[Any]]:
        """Every landed event, parsed, in the order they happened."""
        raw = self.db.execute("SELECT envelope FROM events ORDER BY time, id").fetchall()
        return [parse_event(r[0]) for r in raw]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())

    def latest(self) -> datetime | None:
        row = self.db.execute("SELECT max(time) FROM events").fetchone()
        return row[0] if row else None

    def export_parquet(self, directory: Path) -> dict[str, int]:
        """Write every landed event to `directory` as Parquet, one folder per type, replacing
        what an earlier export wrote there; returns the number of events per type."""
        directory.mkdir(parents=True, exist_ok=True)
        # DuckDB's COPY writes the files itself (no pandas/pyarrow); the path is a parameter
        # of a string literal, so it is quoted as one.
        target = str(directory).replace("'", "''")
        self.db.execute(
            "COPY (SELECT CAST(id AS VARCHAR) AS id, type, subject, time, cohort_id, topic, "
            '"partition", "offset", CAST(envelope AS VARCHAR) AS envelope FROM events '
            f"ORDER BY time, id) TO '{target}' "
            "(FORMAT parquet, PARTITION_BY (type), OVERWRITE_OR_IGNORE true, "
            "FILENAME_PATTERN 'events_{i}')"
        )
        return self.counts()


def parquet_events(directory: Path) -> list[CloudEvent[Any]]:
    """Every event of a Parquet export (`Landing.export_parquet`), parsed, in the order they
    happened: what an analyst with only the files has."""
    pattern = str(directory / "**" / "*.parquet").replace("'", "''")
    with duckdb.connect() as db:
        raw = db.execute(
            f"SELECT envelope FROM read_parquet('{pattern}', hive_partitioning = true) "
            "ORDER BY time, id"
        ).fetchall()
    return [parse_event(r[0]) for r in raw]


def _count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
