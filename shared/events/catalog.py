"""One pydantic model per public event type (catalog v1).

Rules for this file (checked by tests against `shared/schemas/`): within a major version a
field may be added only with a default; none may be removed, renamed or retyped. No personal
data: ids, sector, track, language levels, skills, ranks and dates only. Names, e-mail
addresses, phone numbers and free text travel on the restricted `contacts` topic or stay in
the owning service.

Every field is bounded (shared/bounds.py, the same types the request models use), so a
consumer refuses an out-of-range event when it parses it (dead-lettered at the first attempt)
instead of failing later in its handler or its MongoDB write.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import (
    MAX_CAPACITY,
    MAX_RANKED_APPLICANTS,
    MAX_RANKED_POSITIONS,
    MAX_REQUIRED_SKILLS,
    MAX_STUDENT_SKILLS,
    Code,
    Count,
    Day,
    Flag,
    Id,
    Location,
    Moment,
    Name,
    Seed,
    Skill,
    Year,
)
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

    position_id: Id
    cohort_id: Id
    company_id: Id
    company_name_ja: Name
    company_name_en: Name
    sector: Sector
    track: Track
    title: Name
    capacity: int = Field(ge=1, le=MAX_CAPACITY)
    required_skills: list[Skill] = Field(default_factory=list, max_length=MAX_REQUIRED_SKILLS)
    min_jlpt: JLPTLevel | None = None
    min_english: EnglishLevel | None = None
    paid: Flag
    start_date: Day
    end_date: Day
    location: Location


class PositionClosed(EventData):
    event_name = "position-closed"
    key_field = "position_id"

    position_id: Id
    cohort_id: Id
    company_id: Id
    closed_at: Moment


class ApplicationSubmitted(EventData):
    event_name = "application-submitted"
    key_field = "application_id"

    application_id: Id
    cohort_id: Id
    student_id: Id
    ranked_position_ids: list[Id] = Field(min_length=1, max_length=MAX_RANKED_POSITIONS)
    # Pseudonymous profile facts the matching engine needs (no names, no contact data).
    department: Name
    degree_program: Code
    graduation_year: Year
    jlpt_level: JLPTLevel | None = None
    english_level: EnglishLevel | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_STUDENT_SKILLS)
    available_from: Day
    available_to: Day
    consent_to_data_use: Flag
    submitted_at: Moment


class ApplicationWithdrawn(EventData):
    event_name = "application-withdrawn"
    key_field = "application_id"

    application_id: Id
    cohort_id: Id
    student_id: Id
    reason: Code = Field(description="`withdrawn` by the student, `replaced` by an edit, `erased`.")
    replaced_by: Id | None = None
    withdrawn_at: Moment


class ApplicantsRanked(EventData):
    event_name = "applicants-ranked"
    key_field = "position_id"

    position_id: Id
    cohort_id: Id
    company_id: Id
    ranked_student_ids: list[Id] = Field(max_length=MAX_RANKED_APPLICANTS)
    ranked_at: Moment


class MatchProposed(EventData):
    event_name = "match-proposed"
    key_field = "proposal_id"

    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    sector: Sector
    student_rank: int = Field(
        ge=1, le=MAX_RANKED_POSITIONS, description="Where the student ranked this position."
    )
    residence_status: ResidenceStatus
    respond_by: Moment
    proposed_at: Moment


class _ProposalAnswer(EventData):
    key_field = "proposal_id"

    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id


class MatchAccepted(_ProposalAnswer):
    event_name = "match-accepted"

    party: Party
    accepted_at: Moment
    # Added compatibly (with defaults): the deadline the other side still has to answer by,
    # and whether this acceptance was the second one (placement-confirmed follows).
    respond_by: Moment | None = None
    completes_placement: Flag = False


class MatchDeclined(_ProposalAnswer):
    event_name = "match-declined"

    party: Party
    declined_at: Moment


class MatchExpired(_ProposalAnswer):
    event_name = "match-expired"

    respond_by: Moment
    expired_at: Moment


class PlacementConfirmed(EventData):
    event_name = "placement-confirmed"
    key_field = "placement_id"

    placement_id: Id
    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    sector: Sector
    start_date: Day
    end_date: Day
    residence_status: ResidenceStatus
    confirmed_at: Moment


class SectorCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    sector: Sector
    proposed: Count
    seats: Count


class RoundCompleted(EventData):
    event_name = "round-completed"
    key_field = "round_id"

    round_id: Id
    cohort_id: Id
    round_number: int = Field(ge=1, le=10_000)
    algorithm_version: Code
    seed: Seed
    input_hash: Code
    students: Count
    seats: Count
    proposed: Count
    unmatched: Count
    excluded_pairs: Count
    stable: Flag
    by_sector: list[SectorCount] = Field(default_factory=list, max_length=50)
    completed_at: Moment


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
