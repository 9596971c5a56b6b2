"""One pydantic model per public event type (catalog v1).

Rules for this file (checked by tests against `shared/schemas/`): within a major version a
field may be added only with a default; none may be removed, renamed or retyped. No personal
data: ids, sector, track, language levels, skills, ranks and dates only. Names, e-mail
addresses, phone numbers and free text travel on the restricted `contacts` topic or stay in
the owning service.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.events.vocabulary import (
    CohortState,
    CompanyStatus,
    EnglishLevel,
    JLPTLevel,
    MatchCancelReason,
    Party,
    PlacementCancelReason,
    PositionClosedReason,
    ResidenceStatus,
    Sector,
    Track,
)

# A coordinator's reference into the city's own case file: a code, never free text.
NOTE_CODE = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$"


class EventData(BaseModel):
    """Base of every event payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_name: ClassVar[str]
    schema_major: ClassVar[int] = 1
    # The payload field that holds the aggregate id (the Kafka key and the CloudEvent subject).
    key_field: ClassVar[str]

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))


class PositionPublished(EventData):
    event_name = "position-published"
    key_field = "position_id"

    position_id: str
    cohort_id: str
    company_id: str
    company_name_ja: str
    company_name_en: str
    sector: Sector
    track: Track
    title: str
    capacity: int = Field(ge=1)
    required_skills: list[str] = Field(default_factory=list)
    min_jlpt: JLPTLevel | None = None
    min_english: EnglishLevel | None = None
    paid: bool
    start_date: date
    end_date: date
    location: str


class PositionClosed(EventData):
    event_name = "position-closed"
    key_field = "position_id"

    position_id: str
    cohort_id: str
    company_id: str
    closed_at: datetime
    # Added compatibly: why it closed (None from producers before v1.1 means `closed`).
    reason: PositionClosedReason | None = None


class ApplicationSubmitted(EventData):
    event_name = "application-submitted"
    key_field = "application_id"

    application_id: str
    cohort_id: str
    student_id: str
    ranked_position_ids: list[str] = Field(min_length=1)
    # Pseudonymous profile facts the matching engine needs (no names, no contact data).
    department: str
    degree_program: str
    graduation_year: int
    jlpt_level: JLPTLevel | None = None
    english_level: EnglishLevel | None = None
    skills: list[str] = Field(default_factory=list)
    available_from: date
    available_to: date
    consent_to_data_use: bool
    submitted_at: datetime


class ApplicationWithdrawn(EventData):
    event_name = "application-withdrawn"
    key_field = "application_id"

    application_id: str
    cohort_id: str
    student_id: str
    reason: str = Field(
        description="`withdrawn` by the student, `replaced` by an edit, `erased`, or "
        "`consent_withdrawn` (the student withdrew consent to data use)."
    )
    replaced_by: str | None = None
    withdrawn_at: datetime


class ApplicantsRanked(EventData):
    event_name = "applicants-ranked"
    key_field = "position_id"

    position_id: str
    cohort_id: str
    company_id: str
    ranked_student_ids: list[str]
    ranked_at: datetime


class MatchProposed(EventData):
    event_name = "match-proposed"
    key_field = "proposal_id"

    proposal_id: str
    round_id: str
    cohort_id: str
    student_id: str
    position_id: str
    company_id: str
    sector: Sector
    student_rank: int = Field(ge=1, description="Where the student ranked this position.")
    residence_status: ResidenceStatus
    respond_by: datetime
    proposed_at: datetime
    # Added compatibly: the application the proposal answers (lets the applications service
    # keep one truthful status per application).
    application_id: str | None = None


class _ProposalAnswer(EventData):
    key_field = "proposal_id"

    proposal_id: str
    round_id: str
    cohort_id: str
    student_id: str
    position_id: str
    company_id: str
    # Added compatibly, as on match-proposed.
    application_id: str | None = None


class MatchAccepted(_ProposalAnswer):
    event_name = "match-accepted"

    party: Party
    accepted_at: datetime
    # Added compatibly (with defaults): the deadline the other side still has to answer by,
    # and whether this acceptance was the second one (placement-confirmed follows).
    respond_by: datetime | None = None
    completes_placement: bool = False


class MatchDeclined(_ProposalAnswer):
    event_name = "match-declined"

    party: Party
    declined_at: datetime


class MatchExpired(_ProposalAnswer):
    event_name = "match-expired"

    respond_by: datetime
    expired_at: datetime


class PlacementConfirmed(EventData):
    event_name = "placement-confirmed"
    key_field = "placement_id"

    placement_id: str
    proposal_id: str
    round_id: str
    cohort_id: str
    student_id: str
    position_id: str
    company_id: str
    sector: Sector
    start_date: date
    end_date: date
    residence_status: ResidenceStatus
    confirmed_at: datetime
    # Added compatibly, as on match-proposed.
    application_id: str | None = None


class MatchCancelled(EventData):
    """A pending proposal lost its ground (company rejected or suspended, position closed,
    application withdrawn, student erased, consent withdrawn, or the coordinator cancelled
    it). Its seat is free for the next round; it can no longer be answered."""

    event_name = "match-cancelled"
    key_field = "proposal_id"

    proposal_id: str
    round_id: str
    cohort_id: str
    student_id: str
    position_id: str
    company_id: str
    application_id: str
    sector: Sector
    reason: MatchCancelReason
    cancelled_at: datetime


class PlacementCancelled(EventData):
    """A confirmed placement was cancelled: by the coordinator with a reason, or by the
    platform when a withdrawal or erasure crossed the confirmation. The seat is free."""

    event_name = "placement-cancelled"
    key_field = "placement_id"

    placement_id: str
    proposal_id: str
    round_id: str
    cohort_id: str
    student_id: str
    position_id: str
    company_id: str
    application_id: str
    sector: Sector
    reason: PlacementCancelReason
    note_code: str | None = Field(default=None, pattern=NOTE_CODE)
    cancelled_at: datetime


class CohortStateChanged(EventData):
    """One step of a cohort's lifecycle (see `COHORT_TRANSITIONS`); `from_state` is None
    when the cohort is created."""

    event_name = "cohort-state-changed"
    key_field = "cohort_id"

    cohort_id: str
    from_state: CohortState | None = None
    to_state: CohortState
    application_opens: datetime
    application_closes: datetime
    # The round that moved the cohort to `matching`, when a round did.
    round_id: str | None = None
    changed_at: datetime


class CompanyStatusChanged(EventData):
    """The coordinator approved, rejected or suspended a host company. Rejecting or
    suspending closes its open positions (listed here; each also has its position-closed)."""

    event_name = "company-status-changed"
    key_field = "company_id"

    company_id: str
    status: CompanyStatus
    previous_status: CompanyStatus | None = None
    sector: Sector
    closed_position_ids: list[str] = Field(default_factory=list)
    changed_at: datetime


class StudentProfileUpdated(EventData):
    """A student's matching-relevant profile facts changed (no name, no contact data), so
    that matching decides on current facts, not on the copy in application-submitted."""

    event_name = "student-profile-updated"
    key_field = "student_id"

    student_id: str
    department: str
    degree_program: str
    graduation_year: int
    jlpt_level: JLPTLevel | None = None
    english_level: EnglishLevel | None = None
    skills: list[str] = Field(default_factory=list)
    available_from: date
    available_to: date
    consent_to_data_use: bool
    updated_at: datetime


class SectorCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    sector: Sector
    proposed: int
    seats: int


class ApplicationRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    application_id: str
    student_id: str


class RoundCompleted(EventData):
    event_name = "round-completed"
    key_field = "round_id"

    round_id: str
    cohort_id: str
    round_number: int = Field(ge=1)
    algorithm_version: str
    seed: int
    input_hash: str
    students: int
    seats: int
    proposed: int
    unmatched: int
    excluded_pairs: int
    stable: bool
    by_sector: list[SectorCount] = Field(default_factory=list)
    completed_at: datetime
    # Added compatibly: the applications this round left without a proposal (ids only), so
    # that their status can say `not_matched` and the students can be told what comes next.
    unmatched_applications: list[ApplicationRef] = Field(default_factory=list)


CATALOG: dict[str, type[EventData]] = {
    model.event_name: model
    for model in (
        PositionPublished,
        PositionClosed,
        ApplicationSubmitted,
        ApplicationWithdrawn,
        ApplicantsRanked,
        MatchProposed,
        MatchAccepted,
        MatchDeclined,
        MatchExpired,
        PlacementConfirmed,
        RoundCompleted,
        MatchCancelled,
        PlacementCancelled,
        CohortStateChanged,
        CompanyStatusChanged,
        StudentProfileUpdated,
    )
}


def event_type_of(model: type[EventData]) -> str:
    return model.event_name
