"""Closed vocabularies used in the public events (values are part of the contract)."""

from __future__ import annotations

from enum import StrEnum


class Sector(StrEnum):
    SEMICONDUCTOR = "semiconductor"
    AUTOMOTIVE = "automotive"
    ROBOTICS_AI = "robotics_ai"
    OTHER = "other"


class Track(StrEnum):
    DEVELOPMENT_DESIGN_PROGRAMMING = "development_design_programming"
    PRODUCTION_LINE = "production_line"
    JOINT_RESEARCH = "joint_research"


class JLPTLevel(StrEnum):
    """JLPT levels; N1 is the highest."""

    N1 = "N1"
    N2 = "N2"
    N3 = "N3"
    N4 = "N4"
    N5 = "N5"

    @property
    def strength(self) -> int:
        """5 for N1 down to 1 for N5, so that 'at least N2' is strength >= 4."""
        return 6 - int(self.value[1])


class EnglishLevel(StrEnum):
    """CEFR-style English levels."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"
    C1 = "C1"
    C2 = "C2"

    @property
    def strength(self) -> int:
        return list(EnglishLevel).index(self) + 1


class Party(StrEnum):
    STUDENT = "student"
    COMPANY = "company"


class ResidenceStatus(StrEnum):
    """Guidance only (see BRIEF.md); the immigration office decides."""

    DESIGNATED_ACTIVITIES = "designated_activities"  # 特定活動 (paid, part of curriculum)
    TEMPORARY_VISITOR = "temporary_visitor"  # 短期滞在 (unpaid, <= 90 days)
    CULTURAL_ACTIVITIES = "cultural_activities"  # 文化活動 (unpaid, > 90 days)


class Language(StrEnum):
    ZH_TW = "zh-TW"
    JA = "ja"
    EN = "en"


class CohortState(StrEnum):
    """A cohort's lifecycle; `cohort-state-changed` reports each step."""

    DRAFT = "draft"  # created, not yet taking applications
    OPEN = "open"  # the application window is open
    CLOSED = "closed"  # the window is closed; a round may run
    MATCHING = "matching"  # at least one round ran; residual rounds may follow
    FINISHED = "finished"  # no further rounds


# The order `cohort-state-changed` follows (part of the contract: consumers may rely on it).
# closed -> open is a reopening, possible only before the first round: a round moves the
# cohort on to matching, from where there is no way back.
COHORT_TRANSITIONS: dict[CohortState, tuple[CohortState, ...]] = {
    CohortState.DRAFT: (CohortState.OPEN,),
    CohortState.OPEN: (CohortState.CLOSED,),
    CohortState.CLOSED: (CohortState.OPEN, CohortState.MATCHING),
    CohortState.MATCHING: (CohortState.FINISHED,),
    CohortState.FINISHED: (),
}


class CompanyStatus(StrEnum):
    PENDING = "pending"  # registered through the public call, not yet decided
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"


class PositionClosedReason(StrEnum):
    CLOSED = "closed"  # by the company or the coordinator
    COMPANY_REJECTED = "company_rejected"
    COMPANY_SUSPENDED = "company_suspended"


class MatchCancelReason(StrEnum):
    """Why a pending proposal lost its ground (`match-cancelled`)."""

    COMPANY_REJECTED = "company_rejected"
    COMPANY_SUSPENDED = "company_suspended"
    POSITION_CLOSED = "position_closed"
    APPLICATION_WITHDRAWN = "application_withdrawn"
    STUDENT_ERASED = "student_erased"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    COORDINATOR = "coordinator"


class PlacementCancelReason(StrEnum):
    """Why a confirmed placement was cancelled (`placement-cancelled`). Codes only: the
    coordinator's own notes stay in the city's case file, referenced by a note code."""

    # Chosen by the coordinator.
    STUDENT_WITHDREW = "student_withdrew"
    COMPANY_WITHDREW = "company_withdrew"
    PROGRAM_DECISION = "program_decision"
    OTHER = "other"
    # Applied by the platform when a fact that came first crossed the confirmation in flight
    # (see README, "Lifecycle"): a withdrawal or erasure the applications service accepted,
    # or the position closing (also by the company's rejection or suspension) before it.
    APPLICATION_WITHDRAWN = "application_withdrawn"
    STUDENT_ERASED = "student_erased"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    POSITION_CLOSED = "position_closed"
    COMPANY_REJECTED = "company_rejected"
    COMPANY_SUSPENDED = "company_suspended"
