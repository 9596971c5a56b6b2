"""Pure rules of the applications service: request models and checks, no I/O."""

from __future__ import annotations

import re
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from shared.errors import DomainError, conflict
from shared.events.timezones import TimeZoneName
from shared.events.vocabulary import (
    CohortState,
    CompanyStatus,
    EnglishLevel,
    JLPTLevel,
    Language,
    Sector,
    Track,
)

COHORT_ID = re.compile(r"^\d{4}-[a-z0-9]+(?:-[a-z0-9]+)*$")
TAIPEI_TECH = "National Taipei University of Technology"
MAX_RANKED_POSITIONS = 10


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Deadlines are shown in each party's own zone; stored per party, never guessed from language.
STUDENT_TIME_ZONE = "Asia/Taipei"
COMPANY_TIME_ZONE = "Asia/Tokyo"


class CohortIn(Strict):
    id: str = Field(examples=["2026-summer"], description="Year and season, e.g. 2026-summer.")
    name: str = Field(min_length=1, max_length=200)
    application_opens: datetime
    application_closes: datetime

    @field_validator("id")
    @classmethod
    def _id_format(cls, value: str) -> str:
        if not COHORT_ID.match(value):
            raise ValueError("must look like 2026-summer (year, dash, lower-case words)")
        return value

    @model_validator(mode="after")
    def _window(self) -> CohortIn:
        if self.application_closes <= self.application_opens:
            raise ValueError("application_closes must be after application_opens")
        return self


class ContactIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    preferred_language: Language = Language.JA
    time_zone: TimeZoneName = COMPANY_TIME_ZONE


class CompanyIn(Strict):
    name_ja: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    sector: Sector
    ward: str = Field(min_length=1, max_length=100, examples=["Wakamatsu-ku"])
    address: str = Field(min_length=1, max_length=500)
    contact: ContactIn


class PositionIn(Strict):
    cohort_id: str
    company_id: str | None = Field(
        default=None, description="Only for a coordinator acting for a company."
    )
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    track: Track
    capacity: int = Field(ge=1, le=100)
    required_skills: list[str] = Field(default_factory=list, max_length=30)
    min_jlpt: JLPTLevel | None = None
    min_english: EnglishLevel | None = None
    paid: bool
    start_date: date
    end_date: date
    location: str = Field(min_length=1, max_length=300)

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, value: list[str]) -> list[str]:
        return normalise_skills(value)

    @model_validator(mode="after")
    def _dates(self) -> PositionIn:
        if self.end_date <= self.start_date:
            raise ValueError("end_date must be after start_date")
        return self


class StudentIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    university: str = TAIPEI_TECH
    department: str = Field(min_length=1, max_length=200)
    degree_program: str = Field(min_length=1, max_length=100, examples=["bachelor", "master"])
    graduation_year: int = Field(ge=2024, le=2040)
    jlpt_level: JLPTLevel | None = None
    english_level: EnglishLevel | None = None
    skills: list[str] = Field(default_factory=list, max_length=50)
    available_from: date
    available_to: date
    preferred_language: Language = Language.ZH_TW
    time_zone: TimeZoneName = STUDENT_TIME_ZONE
    consent_to_data_use: bool

    @field_validator("skills")
    @classmethod
    def _skills(cls, value: list[str]) -> list[str]:
        return normalise_skills(value)

    @model_validator(mode="after")
    def _dates(self) -> StudentIn:
        if self.available_to <= self.available_from:
            raise ValueError("available_to must be after available_from")
        return self


def distinct(value: list[str], what: str) -> list[str]:
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        raise ValueError(f"each {what} may be ranked once; repeated: {', '.join(dupes)}")
    return value


class ApplicationEdit(Strict):
    ranked_position_ids: list[str] = Field(min_length=1, max_length=MAX_RANKED_POSITIONS)
    motivation: str = Field(default="", max_length=4000)

    @field_validator("ranked_position_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return distinct(value, "position")


class ApplicationIn(ApplicationEdit):
    cohort_id: str


class RankingIn(Strict):
    ranked_student_ids: list[str] = Field(min_length=1)

    @field_validator("ranked_student_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return distinct(value, "applicant")


def normalise_skills(skills: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated, order kept: skills compare by name."""
    seen: list[str] = []
    for skill in skills:
        s = skill.strip().lower()
        if s and s not in seen:
            seen.append(s)
    return seen


def window_is_open(cohort: dict, now: datetime) -> bool:
    return (
        cohort["state"] == CohortState.OPEN
        and cohort["application_opens"] <= now <= cohort["application_closes"]
    )


def check_window(cohort: dict, now: datetime) -> None:
    if not window_is_open(cohort, now):
        raise DomainError(
            f"the application window of cohort {cohort['_id']!r} is not open "
            f"(state {cohort['state']}, {cohort['application_opens']:%Y-%m-%d %H:%M} to "
            f"{cohort['application_closes']:%Y-%m-%d %H:%M} UTC)",
            field="cohort_id",
        )


def check_ranked_positions(
    ranked: list[str],
    positions: dict[str, dict],
    cohort_id: str,
    field: str = "ranked_position_ids",
) -> None:
    """Every ranked position must exist, belong to the cohort and be open."""
    for index, position_id in enumerate(ranked):
        where = f"{field}.{index}"
        position = positions.get(position_id)
        if position is None:
            raise DomainError(f"position {position_id!r} does not exist", field=where)
        if position["cohort_id"] != cohort_id:
            raise DomainError(
                f"position {position_id!r} belongs to cohort {position['cohort_id']!r}, "
                f"not {cohort_id!r}",
                field=where,
            )
        if position["state"] != "open":
            raise DomainError(f"position {position_id!r} is closed", field=where)


def check_consent(student: dict) -> None:
    if not student.get("consent_to_data_use"):
        raise DomainError(
            "the student has not consented to the use of their data for matching; "
            "update the profile with consent_to_data_use=true first",
            field="consent_to_data_use",
        )


def check_company_can_publish(company: dict) -> None:
    if company["status"] != CompanyStatus.APPROVED:
        raise conflict(
            f"company {company['_id']!r} is {company['status']}; the coordinator must approve "
            "it before it can publish positions",
            field="company_id",
        )


def check_ranking(ranked: list[str], applicant_ids: set[str]) -> None:
    for index, student_id in enumerate(ranked):
        if student_id not in applicant_ids:
            raise DomainError(
                f"student {student_id!r} has no active application to this position",
                field=f"ranked_student_ids.{index}",
            )
