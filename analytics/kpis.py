"""The KPIs from the landed events alone, with the platform's own definitions (shared/kpis),
and the table `make analytics` prints."""

from __future__ import annotations

from typing import Any

from shared.events import CloudEvent
from shared.events.vocabulary import Language
from shared.kpis import TREND_FIELDS, cohort_kpis, records_from_events, trend
from shared.kpis.labels import CODES, KPI_NAMES, word


def kpis_by_cohort(events: list[CloudEvent[Any]]) -> dict[str, dict[str, Any]]:
    return {cid: cohort_kpis(r) for cid, r in records_from_events(events).items()}


def trend_rows(events: list[CloudEvent[Any]]) -> list[dict[str, Any]]:
    return trend(records_from_events(events).values())


def flatten(kpis: dict[str, Any]) -> list[tuple[list[str], Any]]:
    """(path, value) per figure; nested figures get one line per part."""
    rows: list[tuple[list[str], Any]] = []

    def walk(path: list[str], value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk([*path, str(key)], inner)
        else:
            rows.append((path, value))

    for key, value in kpis.items():
        if key not in ("cohort_id", "acceptance_rate_basis"):
            walk([key], value)
    return rows


def _label(path: list[str]) -> str:
    head = word(KPI_NAMES, path[0], Language.EN)
    return " – ".join([head, *(word(CODES, p, Language.EN) for p in path[1:])])


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(by_cohort: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """Each cohort's KPI table, then the trend across cohorts."""
    out: list[str] = []
    for cohort_id, kpis in by_cohort.items():
        lines = [(_label(path), _value(v)) for path, v in flatten(kpis)]
        width = max(len(label) for label, _ in lines)
        out.append(f"Cohort {cohort_id}")
        out += [f"  {label:<{width}}  {value:>8}" for label, value in lines]
        out.append("")
    if rows:
        heads = ["cohort", *TREND_FIELDS]
        cells = [[r["cohort_id"], *(_value(r[f]) for f in TREND_FIELDS)] for r in rows]
        widths = [max(len(str(c)) for c in col) for col in zip(heads, *cells, strict=True)]
        out.append("Trend across cohorts (oldest first)")
        for line in [heads, *cells]:
            out.append("  " + "  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)))
    return "\n".join(out)
