"""Bounds on every input: the annotated types that request models and event contracts share.

One set of types for both sides keeps a promise: whatever the API accepts fits the event it
publishes, and a consumer refuses (and dead-letters at once) what no producer could have sent.
Every check is linear in the input and runs after the length bound, so a huge value is refused
before anything looks at its content.

The identity of a party is its role plus its id; ids of different roles never look alike:

| role        | id                                    | chosen by                                 |
| ----------- | ------------------------------------- | ----------------------------------------- |
| student     | `stu-` + 1-40 of [a-z0-9-]            | the student or university: stu-109590001 |
| company     | `co-` + 12 hex digits                 | the applications service at registration  |
| university  | `uni-`/`univ-` + 1-40 of [a-z0-9-]    | the operator: uni-ntut                    |
| coordinator | 1-64 of [a-z0-9._-], from a letter,   | the operator: city-officer-1              |
|             | not starting stu-, co-, uni-, univ-   |                                           |
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StringConstraints

# MongoDB stores integers as signed 64-bit: anything outside fails the write, not validation.
INT64_MAX = 2**63 - 1

# Inputs
MAX_ID = 100
MAX_NAME = 200
MAX_SKILL = 80
MAX_STUDENT_SKILLS = 50
MAX_REQUIRED_SKILLS = 30
MAX_RANKED_POSITIONS = 10
MAX_RANKED_APPLICANTS = 1000
# Lists of ids an event carries about many aggregates (a company's closed positions, a round's
# unmatched applications): far above any real cohort, far below the broker's message size.
MAX_LISTED_IDS = 10_000
MAX_CAPACITY = 100
MAX_DESCRIPTION = 5000
MAX_MOTIVATION = 4000
# Dates that a person in this program can mean; year 1 or 9999 is a mistake.
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
# Proposal deadlines: at most 90 days.
MAX_RESPOND_WITHIN_HOURS = 90 * 24

# One line: no line breaks or other control characters (these values reach e-mail headers).
SINGLE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
_SINGLE_LINE = re.compile(SINGLE_LINE)
# Free text: line breaks and tabs are fine, other control characters are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) open a direction that
# reaches past the value: U+202E in a company name reverses what a page or an e-mail shows
# after it. No name in zh-TW, ja or en needs them, so they are removed, not refused (text pasted
# from elsewhere carries them unseen). LRM/RLM (U+200E/U+200F) stay: marks that open nothing.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
STUDENT_ID_PATTERN = r"^stu-[a-z0-9][a-z0-9-]{0,39}$"
COMPANY_ID_PATTERN = r"^co-[0-9a-f]{12}$"
UNIVERSITY_ID_PATTERN = r"^univ?-[a-z0-9][a-z0-9-]{0,39}$"
COORDINATOR_ID_PATTERN = r"^(?!(?:stu|co|univ?)-)[a-z][a-z0-9._-]{0,63}$"
COHORT_ID_PATTERN = r"^[0-9]{4}-[a-z0-9]+(?:-[a-z0-9]+)*$"
# A coordinator's reference into the city's own case file: a code, never free text (the events
# that carry it are public, so it must never hold a name or a reason in words).
NOTE_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$"

# Role name -> (pattern, an example for messages). Keys are the `Role` values of shared.auth.
ROLE_ID_PATTERNS: dict[str, tuple[str, str]] = {
    "student": (STUDENT_ID_PATTERN, "stu-109590001"),
    "company": (COMPANY_ID_PATTERN, "co-0123456789ab"),
    "university": (UNIVERSITY_ID_PATTERN, "uni-ntut"),
    "coordinator": (COORDINATOR_ID_PATTERN, "city-officer-1"),
}


def role_id_problem(role: str, ident: str) -> str | None:
    """Why `ident` cannot be the id of a party of `role` (None when it can)."""
    known = ROLE_ID_PATTERNS.get(role)
    if known is None:
        return f"unknown role {role!r}"
    pattern, example = known
    if len(ident) > MAX_ID or not re.fullmatch(pattern, ident):
        return f"{ident[:MAX_ID]!r} is not a {role} id (like {example})"
    return None


def _text_problem(value: str) -> str | None:
    if _SURROGATE.search(value):
        return "must be valid Unicode text"
    return None


def _single_line(value: str) -> str:
    problem = _text_problem(value)
    if problem:
        raise ValueError(problem)
    if not _SINGLE_LINE.fullmatch(value):
        raise ValueError("must be one line, without line breaks or control characters")
    return value


def _free_text(value: str) -> str:
    problem = _text_problem(value)
    if problem:
        raise ValueError(problem)
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return value


def without_bidi_controls(value: Any) -> Any:
    """`value` without bidi embeddings, overrides and isolates (anything else as it is)."""
    return _BIDI_CONTROLS.sub("", value) if isinstance(value, str) else value


_LINE = AfterValidator(_single_line)
_LINE_SCHEMA = Field(json_schema_extra={"pattern": SINGLE_LINE})
_TEXT = AfterValidator(_free_text)
# Last in each type's annotations, so it runs first: the length bounds count what is kept.
_NO_BIDI = BeforeValidator(without_bidi_controls)


def _identifier(pattern: str, explanation: str) -> Any:
    """Validation of an id with a readable reason, and its pattern in the JSON Schema."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(explanation)
        return value

    return AfterValidator(check)


# Any id the platform issues or stores (aggregate ids, message ids): short, no spaces, no markup.
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID),
    _identifier(ID_PATTERN, "must be an id: letters, digits and . _ : - only"),
    Field(json_schema_extra={"pattern": ID_PATTERN}),
]
StudentId = Annotated[
    str,
    StringConstraints(min_length=5, max_length=44),
    _identifier(
        STUDENT_ID_PATTERN,
        "must be a student id: 'stu-' then lower-case letters, digits or '-' (like stu-109590001)",
    ),
    Field(json_schema_extra={"pattern": STUDENT_ID_PATTERN}),
]
CompanyId = Annotated[
    str,
    StringConstraints(min_length=15, max_length=15),
    _identifier(
        COMPANY_ID_PATTERN, "must be a company id: 'co-' then 12 hex digits (co-0123456789ab)"
    ),
    Field(json_schema_extra={"pattern": COMPANY_ID_PATTERN}),
]
CohortId = Annotated[
    str,
    StringConstraints(min_length=6, max_length=40),
    _identifier(COHORT_ID_PATTERN, "must look like 2026-summer (year, dash, lower-case words)"),
    Field(json_schema_extra={"pattern": COHORT_ID_PATTERN}),
]

# One line of text each (names reach e-mail headers; none may break a line).
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME), _LINE, _LINE_SCHEMA, _NO_BIDI
]
Skill = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SKILL), _LINE, _LINE_SCHEMA, _NO_BIDI
]
# A short code or label (degree programme, ward, reason codes, algorithm versions).
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=100), _LINE, _LINE_SCHEMA, _NO_BIDI
]
Location = Annotated[
    str, StringConstraints(min_length=1, max_length=300), _LINE, _LINE_SCHEMA, _NO_BIDI
]
Address = Annotated[
    str, StringConstraints(min_length=1, max_length=500), _LINE, _LINE_SCHEMA, _NO_BIDI
]
# A case file reference (placement-cancelled, outcome-recorded, the coordinator's forms).
NoteCode = Annotated[str, StringConstraints(max_length=40, pattern=NOTE_CODE_PATTERN)]
# Free text, line breaks allowed.
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION), _TEXT, _NO_BIDI]
Motivation = Annotated[str, StringConstraints(max_length=MAX_MOTIVATION), _TEXT, _NO_BIDI]

# Integers that MongoDB can store, and counts.
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Seed = Annotated[int, Field(ge=0, le=INT64_MAX)]
Year = Annotated[int, Field(ge=EARLIEST.year, le=LATEST.year)]

# `paid: "yes"` or `consent_to_data_use: 1` is a mistake to report, not a value to guess.
Flag = StrictBool

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# ISO 8601 with a date part (pydantic would also read "1700000000" as a Unix time).
_ISO_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ].+")
_EARLIEST_MOMENT = datetime(EARLIEST.year, 1, 1, tzinfo=UTC)
_LATEST_MOMENT = datetime(LATEST.year + 1, 1, 1, tzinfo=UTC)


def _date_input(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and not _ISO_DATE.fullmatch(value)):
        raise ValueError("must be a date written as YYYY-MM-DD")
    if not isinstance(value, (str, date)):
        raise ValueError("must be a date written as YYYY-MM-DD")
    return value


def _plausible_date(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST} and {LATEST}")
    return value


def _moment_input(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_MOMENT.fullmatch(value):
        raise ValueError("must be a date and time in ISO 8601 with a time zone")
    if not isinstance(value, (str, datetime)):
        raise ValueError("must be a date and time in ISO 8601 with a time zone")
    return value


def _plausible_moment(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "must include a time zone, e.g. 2026-07-01T09:00:00+09:00 or 2026-07-01T00:00:00Z"
        )
    if not _EARLIEST_MOMENT <= value < _LATEST_MOMENT:
        raise ValueError(f"must be between {EARLIEST} and {LATEST}")
    return value


# A calendar date (ISO `YYYY-MM-DD` only: no timestamps, no date-times) between 2000 and 2100.
Day = Annotated[date, BeforeValidator(_date_input), AfterValidator(_plausible_date)]
# A moment with its time zone (naive date-times are refused: they compare with nothing).
Moment = Annotated[datetime, BeforeValidator(_moment_input), AfterValidator(_plausible_moment)]


def first_repeated(values: list[str]) -> list[str]:
    """The values that occur more than once, in order of first repetition (linear)."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for value in values:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)
