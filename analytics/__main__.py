"""python -m analytics [follow] [--cohort ID] [--json] [--parquet DIR]

Without a command: land what the public topics hold now (catching up from where the last run
stopped), then print the KPIs of every cohort (or of --cohort) and the trend across cohorts,
computed from the landed events alone. `follow` keeps landing as events arrive (the long-running
subscriber of a production deployment) and prints the KPIs every --report-every seconds when
something new landed. --parquet DIR (or ANALYTICS_PARQUET_DIR) also writes the landed events
as Parquet files there, one folder per event type, after landing (in `follow`, with each table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaConnectionError

from analytics.consumer import PUBLIC_TOPICS, Progress, land
from analytics.kpis import kpis_by_cohort, render, trend_rows
from analytics.landing import Landed, Landing
from analytics.settings import AnalyticsSettings
from shared.local_stack import unreachable, use_local_stack


def report(landing: Landing, cohort: str | None, as_json: bool) -> str:
    events = landing.events()
    by_cohort = kpis_by_cohort(events)
    if cohort is not None:
        by_cohort = {k: v for k, v in by_cohort.items() if k == cohort}
    rows = trend_rows(events)
    if as_json:
        return json.dumps({"kpis": by_cohort, "trend": rows}, ensure_ascii=False, indent=2)
    head = f"KPIs from {len(events)} public events landed in {landing.path}"
    if not by_cohort:
        return f"{head}\n\nno cohort{' ' + cohort if cohort else ''} in the events yet"
    return f"{head}\n\n{render(by_cohort, rows)}"


def _progress(progress: Progress, landed: Landed) -> None:
    print(
        f"landed {progress.events} new events"
        + (f", {progress.rejected} refused (see the `rejected` table)" if progress.rejected else "")
        + f" ({progress.batches} batches)",
        file=sys.stderr,
        flush=True,
    )


async def main_async(args: argparse.Namespace, settings: AnalyticsSettings) -> int:
    landing = Landing(settings.duckdb_path)
    parquet = args.parquet or settings.parquet_dir
    try:
        print(
            f"reading {len(PUBLIC_TOPICS)} public topics from {settings.kafka_bootstrap_servers}"
            f" as consumer group {settings.group(settings.group_name)!r} ...",
            file=sys.stderr,
            flush=True,
        )
        if args.command != "follow":
            progress = await land(settings, landing, on_batch=_progress)
            _report_missing(progress)
            _export(landing, parquet)
            print(report(landing, args.cohort, args.json), flush=True)
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        state: dict[str, Any] = {"printed": time.monotonic(), "new": 0}

        def on_batch(progress: Progress, landed: Landed) -> None:
            _progress(progress, landed)
            state["new"] += landed.events
            due = time.monotonic() - state["printed"] >= args.report_every
            if state["new"] and due:
                print(report(landing, args.cohort, args.json), flush=True)
                _export(landing, parquet)
                state.update(printed=time.monotonic(), new=0)

        await land(settings, landing, follow=True, on_batch=on_batch, stop=stop)
        return 0
    finally:
        landing.close()


def _export(landing: Landing, directory: Path | None) -> None:
    if directory is not None:
        counts = landing.export_parquet(directory)
        print(
            f"wrote {sum(counts.values())} events as Parquet to {directory} "
            f"({len(counts)} event types, one folder each)",
            file=sys.stderr,
            flush=True,
        )


def _report_missing(progress: Progress) -> None:
    if progress.missing_topics:
        print(
            "not created yet (nothing published there): " + ", ".join(progress.missing_topics),
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["report", "follow"], default="report")
    parser.add_argument("--cohort", help="only this cohort's KPIs (the trend shows all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--parquet",
        type=Path,
        help="also write the landed events as Parquet files to this folder (one per type)",
    )
    parser.add_argument(
        "--report-every", type=float, default=300, help="follow: seconds between KPI tables"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    use_local_stack()  # the Kafka `make run` started, on its ports
    settings = AnalyticsSettings()
    try:
        return asyncio.run(main_async(args, settings))
    except KafkaConnectionError:
        print(unreachable("Kafka", settings.kafka_bootstrap_servers), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
