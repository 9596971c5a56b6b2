"""A cohort's KPI records from the matching service's documents (pure: documents in,
records out). The KPIs themselves are defined once, in `shared.kpis`, and computed from these
records exactly as `analytics/` computes them from the event stream."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared.kpis import (
    ApplicationRecord,
    CohortRecord,
    CohortRecords,
    PlacementRecord,
    PlacementState,
    PositionRecord,
    ProposalRecord,
    ProposalState,
    RoundRecord,
)
from shared.kpis.records import to_millis

Doc = dict[str, Any]


def _time(value: datetime | str) -> datetime:
    return to_millis(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _declined_by(proposal: Doc) -> str | None:
    for party in ("student", "company"):
        if proposal.get(f"{party}_answer") == "declined":
            return party
    return None


def cohort_records(
    cohort: Doc,
    positions: Iterable[Doc],
    applications: Iterable[Doc],
    proposals: Iterable[Doc],
    placements: Iterable[Doc],
    rounds: Iterable[Doc],
) -> CohortRecords:
    """The records of one cohort. Read-model stubs (a closing or a withdrawal whose
    publication has not arrived yet) are left out until their facts arrive, as the event
    fold leaves them out."""
    cohort_id = cohort["_id"]
    opens = cohort.get("application_opens")
    return CohortRecords(
        cohort=CohortRecord(cohort_id, _time(opens) if opens else None, cohort.get("state")),
        positions=sorted(
            (
                PositionRecord(
                    position_id=p["_id"],
                    cohort_id=cohort_id,
                    company_id=p["company_id"],
                    sector=p["sector"],
                    track=p["track"],
                    capacity=p["capacity"],
                )
                for p in positions
                if "capacity" in p
            ),
            key=lambda r: r.position_id,
        ),
        applications=sorted(
            (
                ApplicationRecord(
                    application_id=a["_id"],
                    cohort_id=cohort_id,
                    student_id=a["student_id"],
                    ranked_position_ids=tuple(a["ranked_position_ids"]),
                    submitted_at=_time(a["submitted_at"]),
                    withdrawn_reason=a.get("withdrawn_reason")
                    if a.get("state") == "withdrawn"
                    else None,
                )
                for a in applications
                if a.get("ranked_position_ids") and a.get("submitted_at")
            ),
            key=lambda r: r.application_id,
        ),
        proposals=sorted(
            (
                ProposalRecord(
                    proposal_id=p["_id"],
                    cohort_id=cohort_id,
                    round_id=p["round_id"],
                    student_id=p["student_id"],
                    position_id=p["position_id"],
                    sector=p["sector"],
                    application_id=p.get("application_id"),
                    proposed_at=_time(p["proposed_at"]),
                    state=ProposalState(p["status"]),
                    declined_by=_declined_by(p) if p["status"] == "declined" else None,
                )
                for p in proposals
            ),
            key=lambda r: r.proposal_id,
        ),
        placements=sorted(
            (
                PlacementRecord(
                    placement_id=p["_id"],
                    cohort_id=cohort_id,
                    proposal_id=p["proposal_id"],
                    student_id=p["student_id"],
                    position_id=p["position_id"],
                    sector=p["sector"],
                    application_id=p.get("application_id"),
                    confirmed_at=_time(p["confirmed_at"]),
                    state=PlacementState(p.get("status", PlacementState.CONFIRMED.value)),
                    outcome=p.get("outcome"),
                )
                for p in placements
            ),
            key=lambda r: r.placement_id,
        ),
        rounds=sorted(
            (
                RoundRecord(
                    round_id=r["_id"],
                    cohort_id=cohort_id,
                    number=r["number"],
                    completed_at=_time(r["completed_at"]),
                )
                for r in rounds
            ),
            key=lambda r: r.number,
        ),
    )
