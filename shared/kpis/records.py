"""The neutral shape the KPIs are computed over: what the public events say about a cohort,
one record per aggregate, with no personal data.

The matching service builds these from its documents, `analytics/` from the event stream
(`from_events.py`). Timestamps are kept to the millisecond, MongoDB's precision, so that a
time read back from a store equals the same time read from an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


def to_millis(moment: datetime) -> datetime:
    """`moment` without its sub-millisecond part (what MongoDB keeps of it)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class ProposalState(StrEnum):
    """A proposal's state as the events tell it (the matching service's machine)."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"  # by one side
    CONFIRMED = "confirmed"  # by both: a placement
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class PlacementState(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


STANDING = (PlacementState.CONFIRMED, PlacementState.COMPLETED)


@dataclass(frozen=True)
class CohortRecord:
    cohort_id: str
    application_opens: datetime | None = None  # orders cohorts in the trend
    state: str | None = None


@dataclass(frozen=True)
class PositionRecord:
    position_id: str
    cohort_id: str
    company_id: str
    sector: str
    track: str
    capacity: int


@dataclass(frozen=True)
class ApplicationRecord:
    application_id: str
    cohort_id: str
    student_id: str
    ranked_position_ids: tuple[str, ...]
    submitted_at: datetime
    # None while it stands; else `withdrawn`, `replaced` (by an edit), `erased`,
    # `consent_withdrawn`.
    withdrawn_reason: str | None = None


@dataclass(frozen=True)
class ProposalRecord:
    proposal_id: str
    cohort_id: str
    round_id: str
    student_id: str
    position_id: str
    sector: str
    application_id: str | None
    proposed_at: datetime
    state: ProposalState
    declined_by: str | None = None  # `student` or `company`


@dataclass(frozen=True)
class PlacementRecord:
    placement_id: str
    cohort_id: str
    proposal_id: str
    student_id: str
    position_id: str
    sector: str
    application_id: str | None
    confirmed_at: datetime
    state: PlacementState
    outcome: str | None = None  # the latest recorded EmploymentOutcome


@dataclass(frozen=True)
class RoundRecord:
    round_id: str
    cohort_id: str
    number: int
    completed_at: datetime


@dataclass
class CohortRecords:
    """Everything the KPIs of one cohort are computed from."""

    cohort: CohortRecord
    positions: list[PositionRecord] = field(default_factory=list)
    applications: list[ApplicationRecord] = field(default_factory=list)
    proposals: list[ProposalRecord] = field(default_factory=list)
    placements: list[PlacementRecord] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)

    @property
    def cohort_id(self) -> str:
        return self.cohort.cohort_id
