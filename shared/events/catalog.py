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
    MAX_LISTED_IDS,
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
    NoteCode,
    Seed,
    Skill,
    Year,
)
from shared.events.vocabulary import (
    CohortState,
    CompanyStatus,
    EmploymentOutcome,
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
    # Added compatibly: why it closed (None from producers before v1.1 means `closed`).
    reason: PositionClosedReason | None = None


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
    reason: Code = Field(
        description="`withdrawn` by the student, `replaced` by an edit, `erased`, or "
        "`consent_withdrawn` (the student withdrew consent to data use)."
    )
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
    # Added compatibly: the application the proposal answers (lets the applications service
    # keep one truthful status per application).
    application_id: Id | None = None


class _ProposalAnswer(EventData):
    key_field = "proposal_id"

    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    # Added compatibly, as on match-proposed.
    application_id: Id | None = None


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
    # Added compatibly, as on match-proposed.
    application_id: Id | None = None


class MatchCancelled(EventData):
    """A pending proposal lost its ground (company rejected or suspended, position closed,
    application withdrawn, student erased, consent withdrawn, or the coordinator cancelled
    it). Its seat is free for the next round; it can no longer be answered."""

    event_name = "match-cancelled"
    key_field = "proposal_id"

    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    application_id: Id
    sector: Sector
    reason: MatchCancelReason
    cancelled_at: Moment


class PlacementCancelled(EventData):
    """A confirmed placement was cancelled: by the coordinator with a reason, or by the
    platform when a withdrawal or erasure crossed the confirmation. The seat is free."""

    event_name = "placement-cancelled"
    key_field = "placement_id"

    placement_id: Id
    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    application_id: Id
    sector: Sector
    reason: PlacementCancelReason
    note_code: NoteCode | None = None
    cancelled_at: Moment


class CohortStateChanged(EventData):
    """One step of a cohort's lifecycle (see `COHORT_TRANSITIONS`); `from_state` is None
    when the cohort is created."""

    event_name = "cohort-state-changed"
    key_field = "cohort_id"

    cohort_id: Id
    from_state: CohortState | None = None
    to_state: CohortState
    application_opens: Moment
    application_closes: Moment
    # The round that moved the cohort to `matching`, when a round did.
    round_id: Id | None = None
    changed_at: Moment


class CompanyStatusChanged(EventData):
    """A host company registered through the public call (status pending, no previous
    status), or the coordinator approved, rejected or suspended it. Rejecting or suspending
    closes its open positions (listed here; each also has its position-closed)."""

    event_name = "company-status-changed"
    key_field = "company_id"

    company_id: Id
    status: CompanyStatus
    previous_status: CompanyStatus | None = None
    sector: Sector
    closed_position_ids: list[Id] = Field(default_factory=list, max_length=MAX_LISTED_IDS)
    changed_at: Moment


class StudentProfileUpdated(EventData):
    """A student's matching-relevant profile facts changed (no name, no contact data), so
    that matching decides on current facts, not on the copy in application-submitted."""

    event_name = "student-profile-updated"
    key_field = "student_id"

    student_id: Id
    department: Name
    degree_program: Code
    graduation_year: Year
    jlpt_level: JLPTLevel | None = None
    english_level: EnglishLevel | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_STUDENT_SKILLS)
    available_from: Day
    available_to: Day
    consent_to_data_use: Flag
    updated_at: Moment


class InternshipCompleted(EventData):
    """The coordinator recorded that the internship of a confirmed placement was completed
    (an internship that ended early is a cancelled placement instead)."""

    event_name = "internship-completed"
    key_field = "placement_id"

    placement_id: Id
    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    application_id: Id
    sector: Sector
    completed_on: Day = Field(description="The internship's last day.")
    recorded_at: Moment


class OutcomeRecorded(EventData):
    """What the intern did after a completed internship, as the coordinator learned it. It
    may be recorded again as it changes (returned to studies, later hired by the host): the
    one with the latest `recorded_at` stands."""

    event_name = "outcome-recorded"
    key_field = "placement_id"

    placement_id: Id
    proposal_id: Id
    round_id: Id
    cohort_id: Id
    student_id: Id
    position_id: Id
    company_id: Id
    application_id: Id
    sector: Sector
    outcome: EmploymentOutcome
    note_code: NoteCode | None = None
    recorded_at: Moment


class SectorCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    sector: Sector
    proposed: Count
    seats: Count


class ApplicationRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    application_id: Id
    student_id: Id


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
    # Added compatibly, and empty since `applications-not-matched` (issue 20): a round's
    # event keeps counts only, so its size does not grow with the cohort. Events from before
    # list here the applications the round left without a proposal; consumers still honour
    # them (a replay from offset 0), and `unmatched` says how many there are either way.
    unmatched_applications: list[ApplicationRef] = Field(
        default_factory=list,
        max_length=MAX_LISTED_IDS,
        description="Empty from current producers: see applications-not-matched.",
    )


# The most applications one `applications-not-matched` event lists: a round leaving more
# without a proposal publishes several events, so each stays small (about 50 KB) and its
# notices are planned in one bounded transaction.
MAX_NOT_MATCHED_PER_EVENT = 500


class ApplicationsNotMatched(EventData):
    """Applications a round left without a proposal, in parts of at most
    MAX_NOT_MATCHED_PER_EVENT (part 1 of `parts`, ...), published with the round's
    round-completed. Keyed by cohort, so the parts follow the round in order."""

    event_name = "applications-not-matched"
    key_field = "cohort_id"

    round_id: Id
    cohort_id: Id
    round_number: int = Field(ge=1, le=10_000)
    part: int = Field(ge=1, le=MAX_LISTED_IDS)
    parts: int = Field(ge=1, le=MAX_LISTED_IDS)
    applications: list[ApplicationRef] = Field(min_length=1, max_length=MAX_NOT_MATCHED_PER_EVENT)
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
        ApplicationsNotMatched,
        MatchCancelled,
        PlacementCancelled,
        CohortStateChanged,
        CompanyStatusChanged,
        StudentProfileUpdated,
        InternshipCompleted,
        OutcomeRecorded,
    )
}


def event_type_of(model: type[EventData]) -> str:
    return model.event_name
