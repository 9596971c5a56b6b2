"""The analytics landing on its own (no Kafka): each event stored once whatever the repeats,
unreadable messages set aside with the reason, and a Parquet export from which the same KPIs
follow (what an analyst with only the files computes)."""

from __future__ import annotations

from pathlib import Path

from analytics.kpis import kpis_by_cohort
from analytics.landing import Landing, Message, parquet_events
from shared.events import make_event
from tests.unit.test_matching_statistics import documents, events, kpis_of


def messages() -> list[Message]:
    stream = [make_event(e, source="/test", subject=e.key) for e in events()]
    return [
        Message(topic=e.name, partition=0, offset=i, value=e.model_dump_json().encode())
        for i, e in enumerate(stream)
    ]


def test_landing_keeps_each_event_once_and_sets_aside_what_it_cannot_read(
    tmp_path: Path,
) -> None:
    landing = Landing(tmp_path / "analytics.duckdb")
    try:
        batch = messages()
        first = landing.land(batch)
        assert first.events == len(batch) and first.rejected == 0
        bad = Message(topic="match-proposed", partition=0, offset=999, value=b'{"id": 1}')
        again = landing.land([*batch, bad])
        assert again.events == 0 and again.rejected == 1
        assert sum(landing.counts().values()) == len(batch)
        reasons = landing.db.execute("SELECT reason FROM rejected").fetchall()
        assert len(reasons) == 1 and reasons[0][0]
        assert kpis_by_cohort(landing.events())["c"] == kpis_of(documents())
    finally:
        landing.close()


def test_the_parquet_export_gives_the_same_kpis(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "analytics.duckdb")
    try:
        landing.land(messages())
        counts = landing.export_parquet(tmp_path / "parquet")
        # Exporting again replaces the files instead of adding duplicates.
        assert landing.export_parquet(tmp_path / "parquet") == counts
    finally:
        landing.close()
    folders = {p.name for p in (tmp_path / "parquet").iterdir()}
    assert folders == {f"type={name}" for name in counts}
    from_files = parquet_events(tmp_path / "parquet")
    assert len(from_files) == sum(counts.values())
    assert kpis_by_cohort(from_files)["c"] == kpis_of(documents())
