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
    EnglishLevel,
    JLPTLevel,
    Party,
    ResidenceStatus,
    Sector,
    Track,
)


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
    reason: str = Field(description="`withdrawn` by the student, `replaced` by an edit, `erased`.")
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


class _ProposalAnswer(EventData):
    key_field = "proposal_id"

    proposal_id: str
    round_id: str
    cohort_id: str
    student_id: str
    position_id: str
    company_id: str


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


class SectorCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    sector: Sector
    proposed: int
    seats: int


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
    )
}


def event_type_of(model: type[EventData]) -> str:
    return model.event_name
