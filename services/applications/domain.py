"""Pure rules of the applications service: request models and checks, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from shared.bounds import (
    MAX_CAPACITY,
    MAX_RANKED_APPLICANTS,
    MAX_RANKED_POSITIONS,
    MAX_REQUIRED_SKILLS,
    MAX_STUDENT_SKILLS,
    Address,
    Code,
    CohortId,
    CompanyId,
    Day,
    Description,
    Flag,
    Id,
    Location,
    Moment,
    Motivation,
    Name,
    Skill,
    StudentId,
    first_repeated,
)
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

TAIPEI_TECH = "National Taipei University of Technology"
# A position lasts at most a year and starts within five years; availability spans at most three.
MAX_POSITION_DAYS = 366
MAX_POSITION_LEAD_DAYS = 5 * 366
MAX_AVAILABILITY_DAYS = 3 * 366
# Far above any host company (a handful each), far below what one event can list.
MAX_OPEN_POSITIONS = 200


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Deadlines are shown in each party's own zone; stored per party, never guessed from language.
STUDENT_TIME_ZONE = "Asia/Taipei"
COMPANY_TIME_ZONE = "Asia/Tokyo"
# The code of the refusal when a contact address is another company's (the portal translates it).
ADDRESS_IN_USE = "address_in_use"


def address_key(email: str) -> str:
    """The form an address is compared in: addresses are case-insensitive in practice."""
    return email.strip().lower()


def address_in_use(field: str, status_code: int = 422) -> DomainError:
    return DomainError(
        "this e-mail address is already the contact of another company on the platform",
        field=field,
        status_code=status_code,
        extra={"code": ADDRESS_IN_USE},
    )


class CohortIn(Strict):
    id: CohortId = Field(examples=["2027-summer"], description="Year and season, e.g. 2027-summer.")
    name: Name
    application_opens: Moment
    application_closes: Moment

    @field_validator("application_closes")
    @classmethod
    def _window(cls, closes: datetime, info: ValidationInfo) -> datetime:
        opens = info.data.get("application_opens")
        if opens is not None and closes <= opens:
            raise ValueError("application_closes must be after application_opens")
        return closes


class ContactIn(Strict):
    name: Name
    email: EmailStr
    preferred_language: Language = Language.JA
    time_zone: TimeZoneName = COMPANY_TIME_ZONE


class CompanyIn(Strict):
    name_ja: Name
    name_en: Name
    sector: Sector
    ward: Code = Field(examples=["Wakamatsu-ku"])
    address: Address
    contact: ContactIn


class PositionIn(Strict):
    cohort_id: CohortId
    company_id: CompanyId | None = Field(
        default=None, description="Only for a coordinator acting for a company."
    )
    title: Name
    description: Description = ""
    track: Track
    capacity: int = Field(ge=1, le=MAX_CAPACITY, strict=True)
    required_skills: list[Skill] = Field(default_factory=list, max_length=MAX_REQUIRED_SKILLS)
    min_jlpt: JLPTLevel | None = None
    min_english: EnglishLevel | None = None
    paid: Flag
    start_date: Day = Field(description="Not in the past, within five years.")
    end_date: Day = Field(description="After start_date, at most a year later.")
    location: Location

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, value: list[str]) -> list[str]:
        return normalise_skills(value)

    @field_validator("start_date")
    @classmethod
    def _start(cls, start: date) -> date:
        today = datetime.now(UTC).date()
        if start < today:
            raise ValueError(f"start_date must not be in the past (today is {today})")
        if start > today + timedelta(days=MAX_POSITION_LEAD_DAYS):
            raise ValueError("start_date must be within five years")
        return start

    @field_validator("end_date")
    @classmethod
    def _end(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start_date")
        if start is not None and end <= start:
            raise ValueError("end_date must be after start_date")
        if start is not None and (end - start).days > MAX_POSITION_DAYS:
            raise ValueError("a position may last at most a year (end_date - start_date)")
        return end


class StudentIn(Strict):
    name: Name
    email: EmailStr
    university: Name = TAIPEI_TECH
    department: Name
    degree_program: Code = Field(examples=["bachelor", "master"])
    graduation_year: int = Field(ge=2024, le=2040, strict=True)
    jlpt_level: JLPTLevel | None = None
    english_level: EnglishLevel | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_STUDENT_SKILLS)
    available_from: Day
    available_to: Day
    preferred_language: Language = Language.ZH_TW
    time_zone: TimeZoneName = STUDENT_TIME_ZONE
    consent_to_data_use: Flag

    @field_validator("skills")
    @classmethod
    def _skills(cls, value: list[str]) -> list[str]:
        return normalise_skills(value)

    @field_validator("available_to")
    @classmethod
    def _dates(cls, to: date, info: ValidationInfo) -> date:
        start = info.data.get("available_from")
        if start is not None and to <= start:
            raise ValueError("available_to must be after available_from")
        if start is not None and (to - start).days > MAX_AVAILABILITY_DAYS:
            raise ValueError("availability may span at most three years")
        return to


def distinct(value: list[str], what: str) -> list[str]:
    repeated = first_repeated(value)
    if repeated:
        shown = ", ".join(repeated[:10]) + (" ..." if len(repeated) > 10 else "")
        raise ValueError(f"each {what} may be ranked once; repeated: {shown}")
    return value


class ApplicationEdit(Strict):
    ranked_position_ids: list[Id] = Field(min_length=1, max_length=MAX_RANKED_POSITIONS)
    motivation: Motivation = ""

    @field_validator("ranked_position_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return distinct(value, "position")


class ApplicationIn(ApplicationEdit):
    cohort_id: CohortId


class RankingIn(Strict):
    ranked_student_ids: list[StudentId] = Field(min_length=1, max_length=MAX_RANKED_APPLICANTS)

    @field_validator("ranked_student_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return distinct(value, "applicant")


def normalise_skills(skills: list[str]) -> list[str]:
    """Trimmed and de-duplicated, order kept, each as the person typed it ("OpenCV", "PLC",
    "C"): people read them as written. Skills compare case-insensitively (`skill_key`), so a
    second spelling of the same skill ("opencv" after "OpenCV") is dropped."""
    seen: dict[str, str] = {}
    for skill in skills:
        s = " ".join(skill.split())
        if s and skill_key(s) not in seen:
            seen[skill_key(s)] = s
    return list(seen.values())


def skill_key(skill: str) -> str:
    """What two spellings of one skill have in common."""
    return " ".join(skill.split()).casefold()


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


def check_open_positions(open_now: int) -> None:
    """A company's open positions are bounded: rejecting or suspending it closes them all in
    one transaction and lists them in one company-status-changed event."""
    if open_now >= MAX_OPEN_POSITIONS:
        raise conflict(
            f"a company may have at most {MAX_OPEN_POSITIONS} open positions at a time; "
            "close one before publishing another",
            field="company_id",
        )


def check_ranking(ranked: list[str], applicant_ids: set[str]) -> None:
    for index, student_id in enumerate(ranked):
        if student_id not in applicant_ids:
            raise DomainError(
                f"student {student_id!r} has no active application to this position",
                field=f"ranked_student_ids.{index}",
            )
