"""What the services refused, said in the person's language: the form's own label for the field,
and the reason translated when we know it (else the service's words, kept as a quoted detail
inside a translated sentence).

The services answer every refusal with `[{field, reason, ...}]` in English (shared/errors.py):
pydantic's messages for malformed input, and the services' own sentences for broken rules.
No library translates those, and their wording is the services' choice, so this maps the
ones people meet on the portal's forms and falls back gracefully for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.portal import labels
from services.portal.clients import ApiError
from services.portal.i18n import N_, gettext

# -- the forms' fields: API field -> (id of the input on the page, its label) -----------------

Fields = Mapping[str, tuple[str, str]]

CALL: Fields = {
    "name_ja": ("name_ja", N_("Company name in Japanese")),
    "name_en": ("name_en", N_("Company name in English")),
    "sector": ("sector", N_("Sector")),
    "ward": ("ward", N_("Ward")),
    "address": ("address", N_("Address")),
    "contact.name": ("contact_name", N_("Name")),
    "contact.email": ("contact_email", N_("E-mail address")),
    "contact.preferred_language": ("preferred_language", N_("Language of messages")),
    "contact.time_zone": ("time_zone", N_("Time zone")),
}
CONTACT: Fields = {
    "name": ("contact_name", N_("Name")),
    "email": ("contact_email", N_("E-mail address")),
    "preferred_language": ("preferred_language", N_("Language of messages")),
    "time_zone": ("time_zone", N_("Time zone")),
}
COHORT: Fields = {
    "id": ("cohort_id", N_("Cohort id")),
    "name": ("cohort_name", N_("Cohort name")),
    "application_opens": ("opens", N_("Applications open")),
    "application_closes": ("closes", N_("Applications close")),
}
POSITION: Fields = {
    "cohort_id": ("cohort_id", N_("Cohort")),
    "title": ("title", N_("Title")),
    "description": ("description", N_("What the intern will do")),
    "track": ("track", N_("Track")),
    "capacity": ("capacity", N_("Seats")),
    "required_skills": ("required_skills", N_("Required skills")),
    "min_jlpt": ("min_jlpt", N_("Minimum Japanese level (JLPT)")),
    "min_english": ("min_english", N_("Minimum English level (CEFR)")),
    "paid": ("paid", N_("Pay")),
    "start_date": ("start_date", N_("First day")),
    "end_date": ("end_date", N_("Last day")),
    "location": ("location", N_("Place of work")),
}
PROFILE: Fields = {
    "name": ("name", N_("Full name")),
    "email": ("name", N_("E-mail address")),
    "department": ("department", N_("Department")),
    "degree_program": ("degree_program", N_("Degree program")),
    "graduation_year": ("graduation_year", N_("Year of graduation")),
    "jlpt_level": ("jlpt_level", N_("Japanese level (JLPT)")),
    "english_level": ("english_level", N_("English level (CEFR)")),
    "skills": ("skills", N_("Skills")),
    "available_from": ("available_from", N_("Available from")),
    "available_to": ("available_to", N_("Available until")),
    "preferred_language": ("preferred_language", N_("Language of the portal and your messages")),
    "time_zone": ("time_zone", N_("Time zone")),
    "consent_to_data_use": ("consent", N_("Consent")),
}
APPLICATION: Fields = {
    "cohort_id": ("choices", N_("Cohort")),
    "ranked_position_ids": ("choices", N_("Your choices")),
    "motivation": ("motivation", N_("Motivation")),
    "consent_to_data_use": ("choices", N_("Consent")),
}
RANKING: Fields = {"ranked_student_ids": ("ranking", N_("Your ranking"))}
PLACEMENT_CANCEL: Fields = {
    "reason": ("reason", N_("Reason")),
    "note_code": ("note_code", N_("Case file reference (optional)")),
}

# -- reasons: (pattern of the service's words, our sentence, the field it concerns) ----------

Values = Callable[[re.Match[str]], dict[str, str]]


@dataclass(frozen=True)
class Known:
    pattern: re.Pattern[str]
    text: str
    field: str | None = None  # the field the sentence is about, when the service named none
    values: Values | None = None


def _known(
    pattern: str, text: str, field: str | None = None, values: Values | None = None
) -> Known:
    return Known(re.compile(pattern, re.IGNORECASE), text, field, values)


def _n(match: re.Match[str]) -> dict[str, str]:
    return {"n": match.group("n")}


KNOWN: tuple[Known, ...] = (
    # pydantic's messages for malformed input
    _known(r"^Field required", N_("Please fill this in.")),
    _known(r"^String should have at least 1 character", N_("Please fill this in.")),
    _known(
        r"^String should have at most (?P<n>\d+) characters?",
        N_("Please use at most %(n)s characters."),
        values=_n,
    ),
    _known(r"^List should have at least 1 item", N_("Please choose at least one.")),
    _known(
        r"^List should have at most (?P<n>\d+) items?",
        N_("Please choose at most %(n)s."),
        values=_n,
    ),
    _known(
        r"^Input should be greater than or equal to (?P<n>[\d.]+)",
        N_("Please enter %(n)s or more."),
        values=_n,
    ),
    _known(
        r"^Input should be less than or equal to (?P<n>[\d.]+)",
        N_("Please enter %(n)s or less."),
        values=_n,
    ),
    _known(r"^Input should be a valid integer", N_("Please enter a whole number.")),
    _known(r"^Input should be a valid datetime", N_("Please enter a date and a time.")),
    _known(r"^Input should be a valid date", N_("Please enter a date.")),
    _known(r"^Input should be '", N_("Please choose one of the options.")),
    _known(r"^value is not a valid email address", N_("Please enter a valid e-mail address.")),
    _known(r"^String should match pattern", N_("Please check the format.")),
    _known(r"^unknown time zone", N_("Please choose a time zone from the list.")),
    # the services' own rules
    _known(
        r"end_date must be after start_date",
        N_("The last day must be after the first day."),
        "end_date",
    ),
    _known(
        r"available_to must be after available_from",
        N_("“Available until” must be after “Available from”."),
        "available_to",
    ),
    _known(
        r"application_closes must be after application_opens",
        N_("The window must close after it opens."),
        "application_closes",
    ),
    _known(
        r"must look like 2026-summer",
        N_("Use the year, a dash and lower-case words, for example 2026-summer."),
    ),
    _known(r"^cohort '[^']*' already exists", N_("A cohort with this id exists already.")),
    _known(
        r"application window of cohort '[^']*' is not open",
        N_("The application window of this cohort is not open."),
    ),
    _known(
        r"has not consented",
        N_("Please give your consent in your profile first; without it you cannot apply."),
    ),
    _known(
        r"^position '[^']*' (is closed|is already closed)",
        N_("The position is closed."),
    ),
    _known(r"^position '[^']*' does not exist", N_("A position on your list no longer exists.")),
    _known(
        r"already has application '[^']*' in this cohort",
        N_("You have an application in this cohort already; its status is on your status page."),
    ),
    _known(
        r"the coordinator must approve it before",
        N_("The city office has not approved your company (or has suspended it)."),
    ),
    _known(
        r"positions can be published while it is a draft or open",
        N_("This cohort takes no positions any more."),
    ),
    _known(
        r"a position can be changed while its cohort is a draft or open",
        N_("The application window has closed, so the position can no longer be changed."),
    ),
    _known(r"a position stays in its cohort", N_("A position stays in its cohort.")),
    _known(
        r"has no active application to this position",
        N_("An applicant has withdrawn meanwhile. Please reload the page and save again."),
    ),
    _known(
        r"each (position|applicant) may be ranked once",
        N_("Each entry may appear only once."),
    ),
    _known(
        r"a round needs a closed application window",
        N_("A round needs a closed application window."),
    ),
    _known(
        r"has no open positions or applications to match",
        N_("There is nothing to match yet: no open position or no application."),
    ),
    _known(
        r"is not known to the matching service",
        N_("The matching service has not heard of this cohort yet. Please try again in a moment."),
    ),
    _known(r"deadline to answer passed", N_("The deadline to answer has passed.")),
    _known(r"has already answered", N_("This side has answered already.")),
    _known(
        r"can no longer be answered",
        N_("This proposal can no longer be answered."),
    ),
    _known(r"changed meanwhile", N_("It changed meanwhile. Please reload the page.")),
    _known(
        r"confirmed placement and can no longer be withdrawn",
        N_(
            "Your placement is confirmed, so the application cannot be withdrawn here. Please "
            "write to the city office, which can cancel the placement."
        ),
    ),
    _known(
        r"must cancel it before the profile can be erased",
        N_(
            "Your placement is confirmed. The city office must cancel it before your data can "
            "be erased; please write to them."
        ),
    ),
    _known(r"^choose one of: ", N_("Please choose one of the reasons.")),
)

# The services' stable codes (shared/errors.py ErrorItem.code): decided on before any wording.
ADDRESS_IN_USE = N_(
    "This e-mail address is already used by someone else on the platform. Please use another "
    "address, or write to the city office if you think this is a mistake."
)
CODES: Mapping[str, str] = {"address_in_use": ADDRESS_IN_USE}

# A 409 that names the state something is in now: said with the state's word.
STATE_KINDS = (
    "cohort_state",
    "company_status",
    "proposal_status",
    "placement_status",
    "application_state",
    "position_state",
)


@dataclass(frozen=True)
class Problem:
    """One refusal, ready to show: the field's label and the input's id (to link to it), our
    sentence, and the service's own words when we have no sentence for them."""

    text: str
    label: str | None = None
    target: str | None = None
    detail: str | None = None


def _state_word(state: str) -> str:
    for kind in STATE_KINDS:
        if state in labels.LABELS[kind]:
            return labels.label(kind, state)
    return state


def describe(detail: Mapping[str, Any], fields: Fields | None = None) -> Problem:
    field = str(detail.get("field") or "")
    reason = str(detail.get("reason") or "")
    reason_text = reason.removeprefix("Value error, ")
    text: str | None = None
    code = str(detail.get("code") or "")
    if code in CODES:
        text = gettext(CODES[code])
    for known in KNOWN if text is None else ():
        found = known.pattern.search(reason_text)
        if found:
            text = gettext(known.text)
            if known.values:
                text = text % known.values(found)
            field = field or (known.field or "")
            break
    if text is None and detail.get("current_state"):
        text = gettext("This cannot be done now: it is “%(state)s”.") % {
            "state": _state_word(str(detail["current_state"]))
        }
    label = target = None
    key = re.sub(r"\.\d+(?=\.|$)", "", field)  # ranked_position_ids.2 -> ranked_position_ids
    if fields and key in fields:
        target, msgid = fields[key]
        label = gettext(msgid)
    if text is None:
        return Problem(gettext("The entry was not accepted."), label, target, reason or None)
    return Problem(text, label, target)


def describe_all(error: ApiError, fields: Fields | None = None) -> list[Problem]:
    problems = [describe(d, fields) for d in error.details] or [
        Problem(gettext("The entry was not accepted."))
    ]
    return problems


def local(label_msgid: str, text_msgid: str, target: str | None = None) -> Problem:
    """A problem the portal found itself before asking a service."""
    return Problem(gettext(text_msgid), gettext(label_msgid), target)


def address_in_use(field: tuple[str, str]) -> Problem:
    """The portal's own finding that an address belongs to someone else already."""
    target, label = field
    return Problem(gettext(ADDRESS_IN_USE), gettext(label), target)
