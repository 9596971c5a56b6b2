"""A cohort's figures for the coordinator (pure: documents in, numbers out).

- acceptance_rate = proposals both sides accepted / proposals that were answered or expired
  (confirmed + declined + expired). Cancelled proposals are left out: their ground went away
  before anyone could answer, so they say nothing about acceptance. A placement cancelled
  later still counts as accepted.
- match_rate = students with a (not cancelled) placement / applicants, where applicants are
  the distinct students who applied in the cohort, including those who withdrew later.
- applications by sector and by track: an application counts once for every sector (track)
  among the positions it ranks, and once more under `first_choice` for its first choice's.
  Edits (an application replaced by its edited version) are not counted twice.
- median_hours_to_placement: from the application's submission to the placement's
  confirmation, over placements that stand.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from statistics import median
from typing import Any

from services.matching.domain.lifecycle import PlacementStatus, ProposalStatus

Doc = dict[str, Any]


def _time(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def cohort_statistics(
    cohort_id: str,
    rounds: int,
    proposals: list[Doc],
    applications: list[Doc],
    positions: dict[str, Doc],
    placements: list[Doc],
) -> Doc:
    by_status: Counter[str] = Counter(p["status"] for p in proposals)
    by_sector: dict[str, Counter[str]] = {}
    for p in proposals:
        by_sector.setdefault(p["sector"], Counter())[p["status"]] += 1

    accepted = by_status[ProposalStatus.CONFIRMED]
    decided = accepted + by_status[ProposalStatus.DECLINED] + by_status[ProposalStatus.EXPIRED]

    counted = [
        a
        for a in applications
        if a.get("ranked_position_ids") and a.get("withdrawn_reason") != "replaced"
    ]
    applicants = {a["student_id"] for a in counted}
    sectors: dict[str, Counter[str]] = {}
    tracks: dict[str, Counter[str]] = {}
    for a in counted:
        ranked = [positions[pid] for pid in a["ranked_position_ids"] if pid in positions]
        for key, table in (("sector", sectors), ("track", tracks)):
            for value in {p[key] for p in ranked}:
                table.setdefault(value, Counter())["applications"] += 1
            if ranked:
                table.setdefault(ranked[0][key], Counter())["first_choice"] += 1

    standing = [p for p in placements if p.get("status", "confirmed") == PlacementStatus.CONFIRMED]
    submitted = {a["_id"]: a.get("submitted_at") for a in applications}
    application_of = {p["_id"]: p.get("application_id") for p in proposals}
    hours = []
    for placement in standing:
        application_id = placement.get("application_id") or application_of.get(
            placement["proposal_id"]
        )
        at = submitted.get(application_id)
        if at is not None:
            delta = _time(placement["confirmed_at"]) - _time(at)
            hours.append(delta.total_seconds() / 3600)
    placed_students = {p["student_id"] for p in standing}

    return {
        "cohort_id": cohort_id,
        "rounds": rounds,
        "applicants": len(applicants),
        "active_applications": sum(1 for a in applications if a.get("state") == "active"),
        "applications_by_sector": {k: dict(v) for k, v in sorted(sectors.items())},
        "applications_by_track": {k: dict(v) for k, v in sorted(tracks.items())},
        "proposals": dict(by_status),
        "placements": len(standing),
        "placements_cancelled": len(placements) - len(standing),
        "acceptance_rate": _rate(accepted, decided),
        "acceptance_rate_basis": {"accepted": accepted, "answered_or_expired": decided},
        "match_rate": _rate(len(placed_students), len(applicants)),
        "median_hours_to_placement": round(median(hours), 1) if hours else None,
        "by_sector": {k: dict(v) for k, v in by_sector.items()},
    }
