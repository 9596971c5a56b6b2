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
