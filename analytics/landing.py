"""The DuckDB file the events land in: one row per event, keyed by its id, so that a
redelivered or replayed event is stored once; what could not be read is kept aside with the
reason, never dropped silently.

Analysts query it with SQL as well (`duckdb.connect(".data/analytics.duckdb", read_only=True)`):
`events` holds the CloudEvent envelopes (`envelope->>'$.data.cohort_id'`, ...), `rejected`
what was refused.
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


def _count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
