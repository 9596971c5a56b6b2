"""The KPI definitions (pure: records in, figures out). README, "KPIs", states the same in
words; `KPI_DEFINITIONS` is that text for the reports, and a test checks the two agree.

Conventions: rates are fractions rounded to 4 places (None when the denominator is 0); times
are hours rounded to 2 places, computed on whole milliseconds; a percentile interpolates
linearly between the two nearest values (numpy's and DuckDB's `quantile_cont` default), so the
median of an even count is the mean of the middle two.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events.vocabulary import EMPLOYMENT_IN_JAPAN, LOCAL_EMPLOYMENT, EmploymentOutcome
from shared.kpis.records import (
    STANDING,
    CohortRecords,
    PlacementState,
    ProposalState,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
NOT_RECORDED = "not_recorded"

# One line per KPI (the reports' "definition" column; README holds the same words).
KPI_DEFINITIONS: dict[str, str] = {
    "rounds": "match rounds run",
    "applications": "applications submitted (an edit replaces, it does not add one)",
    "active_applications": "applications not withdrawn",
    "applicants": "distinct students who applied, including those who withdrew later",
    "seats": "places offered: the capacity of every position published in the cohort",
    "applicants_per_seat": "applicants / seats",
    "applications_by_sector": "per sector: applications ranking at least one of its "
    "positions, and first choices",
    "applications_by_track": "per track: applications ranking at least one of its positions, "
    "and first choices",
    "seats_by_sector": "seats per sector",
    "students_proposed": "distinct students who received at least one proposal",
    "proposals": "proposals by current state",
    "proposals_by_sector": "proposals by sector and state",
    "declines_by_party": "declined proposals by who declined",
    "acceptance_rate": "proposals both sides accepted / proposals answered or expired "
    "(confirmed + declined + expired; cancelled ones are left out)",
    "decline_rate": "declined / proposals answered or expired",
    "expiry_rate": "expired / proposals answered or expired",
    "placements": "placements that stand (confirmed or completed, not cancelled)",
    "placements_cancelled": "placements cancelled after confirmation",
    "placements_by_sector": "standing placements per sector",
    "match_rate": "students with a standing placement / applicants",
    "hours_to_proposal": "per application with a proposal: hours from submission to its first "
    "proposal (median, 90th percentile, count)",
    "hours_to_placement": "per standing placement: hours from the application's submission to "
    "the confirmation (median, 90th percentile, count)",
    "seats_left_empty": "per position, capacity minus standing placements, summed",
    "completed": "placements whose internship was completed",
    "completion_rate": "completed / standing placements",
    "outcomes": "completed internships by the latest recorded outcome (not_recorded: none yet)",
    "local_employment_rate": "completed internships whose intern was hired by the host or "
    "elsewhere in Kitakyushu / completed internships",
    "japan_employment_rate": "completed internships whose intern was hired in Japan "
    "(Kitakyushu included) / completed internships",
}

# The KPIs the trend across cohorts shows, one row per cohort.
TREND_FIELDS = (
    "applicants",
    "seats",
    "applicants_per_seat",
    "match_rate",
    "acceptance_rate",
    "decline_rate",
    "expiry_rate",
    "hours_to_placement_median",
    "seats_left_empty",
    "completion_rate",
    "local_employment_rate",
)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _hours(start: datetime, end: datetime) -> float:
    return (_ms(end) - _ms(start)) / 3_600_000


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolating linearly between the nearest values."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = (len(ordered) - 1) * q / 100
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def _summary(hours: list[float]) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "median": rounded(percentile(hours, 50)),
        "p90": rounded(percentile(hours, 90)),
        "count": len(hours),
    }


def _counted(records: CohortRecords) -> list[Any]:
    # An edit withdraws the old version as `replaced` and submits the new one: count it once.
    return [a for a in records.applications if a.withdrawn_reason != "replaced"]


def _standing(records: CohortRecords) -> list[Any]:
    return [p for p in records.placements if p.state in STANDING]


def hours_to_placement(records: CohortRecords) -> list[float]:
    """Per standing placement, hours from its application's submission to the confirmation
    (the distribution behind `hours_to_placement`, also drawn on the dashboard)."""
    submitted = {a.application_id: a.submitted_at for a in records.applications}
    application_of = {p.proposal_id: p.application_id for p in records.proposals}
    hours = []
    for placement in _standing(records):
        application_id = placement.application_id or application_of.get(placement.proposal_id)
        at = submitted.get(application_id or "")
        if at is not None:
            hours.append(_hours(at, placement.confirmed_at))
    return sorted(hours)


def _hours_to_proposal(records: CohortRecords) -> list[float]:
    submitted = {a.application_id: a.submitted_at for a in records.applications}
    first: dict[str, datetime] = {}
    for p in records.proposals:
        if p.application_id is not None and p.application_id in submitted:
            seen = first.get(p.application_id)
            first[p.application_id] = p.proposed_at if seen is None else min(seen, p.proposed_at)
    return sorted(_hours(submitted[a], at) for a, at in first.items())


def _by_position(records: CohortRecords, key: str) -> dict[str, dict[str, int]]:
    """Per sector (or track): applications ranking at least one of its positions, and the
    applications whose first choice is one of them."""
    positions = {p.position_id: p for p in records.positions}
    table: dict[str, Counter[str]] = {}
    for a in _counted(records):
        ranked = [positions[pid] for pid in a.ranked_position_ids if pid in positions]
        for value in {getattr(p, key) for p in ranked}:
            table.setdefault(value, Counter())["applications"] += 1
        if ranked:
            table.setdefault(getattr(ranked[0], key), Counter())["first_choice"] += 1
    return {
        k: {"applications": v["applications"], "first_choice": v["first_choice"]}
        for k, v in sorted(table.items())
    }


def cohort_kpis(records: CohortRecords) -> dict[str, Any]:
    """Every KPI of one cohort (see KPI_DEFINITIONS)."""
    counted = _counted(records)
    applicants = {a.student_id for a in counted}
    seats = sum(p.capacity for p in records.positions)
    seats_by_sector: Counter[str] = Counter()
    for position in records.positions:
        seats_by_sector[position.sector] += position.capacity

    by_state: Counter[str] = Counter(p.state.value for p in records.proposals)
    by_sector: dict[str, Counter[str]] = {}
    for p in records.proposals:
        by_sector.setdefault(p.sector, Counter())[p.state.value] += 1
    declines = Counter(
        p.declined_by for p in records.proposals if p.state is ProposalState.DECLINED
    )
    confirmed = by_state[ProposalState.CONFIRMED]
    declined = by_state[ProposalState.DECLINED]
    expired = by_state[ProposalState.EXPIRED]
    decided = confirmed + declined + expired

    standing = _standing(records)
    placed_at: Counter[str] = Counter(p.position_id for p in standing)
    completed = [p for p in standing if p.state is PlacementState.COMPLETED]
    outcomes: Counter[str] = Counter(p.outcome or NOT_RECORDED for p in completed)
    local = sum(outcomes[o] for o in LOCAL_EMPLOYMENT)
    in_japan = sum(outcomes[o] for o in EMPLOYMENT_IN_JAPAN)

    return {
        "cohort_id": records.cohort_id,
        "rounds": len(records.rounds),
        "applications": len(counted),
        "active_applications": sum(1 for a in counted if a.withdrawn_reason is None),
        "applicants": len(applicants),
        "seats": seats,
        "applicants_per_seat": round(len(applicants) / seats, 2) if seats else None,
        "applications_by_sector": _by_position(records, "sector"),
        "applications_by_track": _by_position(records, "track"),
        "seats_by_sector": dict(sorted(seats_by_sector.items())),
        "students_proposed": len({p.student_id for p in records.proposals}),
        "proposals": {s.value: by_state[s.value] for s in ProposalState if by_state[s.value]},
        "proposals_by_sector": {k: dict(sorted(v.items())) for k, v in sorted(by_sector.items())},
        "declines_by_party": {k: declines[k] for k in ("student", "company") if declines[k]},
        "acceptance_rate": _rate(confirmed, decided),
        "acceptance_rate_basis": {"accepted": confirmed, "answered_or_expired": decided},
        "decline_rate": _rate(declined, decided),
        "expiry_rate": _rate(expired, decided),
        "placements": len(standing),
        "placements_cancelled": sum(
            1 for p in records.placements if p.state is PlacementState.CANCELLED
        ),
        "placements_by_sector": dict(sorted(Counter(p.sector for p in standing).items())),
        "match_rate": _rate(len({p.student_id for p in standing}), len(applicants)),
        "hours_to_proposal": _summary(_hours_to_proposal(records)),
        "hours_to_placement": _summary(hours_to_placement(records)),
        "seats_left_empty": sum(
            max(0, p.capacity - placed_at[p.position_id]) for p in records.positions
        ),
        "completed": len(completed),
        "completion_rate": _rate(len(completed), len(standing)),
        "outcomes": {
            k: outcomes[k]
            for k in (*(o.value for o in EmploymentOutcome), NOT_RECORDED)
            if outcomes[k]
        },
        "local_employment_rate": _rate(local, len(completed)),
        "japan_employment_rate": _rate(in_japan, len(completed)),
    }


def trend(cohorts: Iterable[CohortRecords]) -> list[dict[str, Any]]:
    """The main KPIs per cohort, oldest cohort first (by the opening of its application
    window, then its id): how the program develops from one cohort to the next."""

    def order(records: CohortRecords) -> tuple[datetime, str]:
        opens = records.cohort.application_opens or datetime.max.replace(tzinfo=UTC)
        return opens, records.cohort_id

    rows = []
    for records in sorted(cohorts, key=order):
        kpis = cohort_kpis(records)
        flat = {**kpis, "hours_to_placement_median": kpis["hours_to_placement"]["median"]}
        rows.append({"cohort_id": records.cohort_id, **{k: flat[k] for k in TREND_FIELDS}})
    return rows
