"""Messages rendered from Jinja2 templates: one file per message and language under
templates/<language>/<message>.j2; the first line is the subject, the rest the body.
Files whose name starts with `_` are shared parts (greetings, signatures) the messages
include, so that every mail of one kind opens and closes the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.notifications.wording import (
    FALLBACK,
    action_url,
    company_name_for,
    format_date,
    format_deadline,
    full_stop,
    residence_short,
    residence_text,
    sector_name,
    short_company_name,
    zone_of,
)
from shared.events.vocabulary import Language

TEMPLATES = Path(__file__).resolve().parent / "templates"
UNNAMED_STUDENT = {Language.EN: "the applicant", Language.JA: "応募者", Language.ZH_TW: "申請者"}


@dataclass(frozen=True)
class Site:
    """What every mail points to: the portal (PUBLIC_BASE_URL) and the program's contact."""

    public_base_url: str
    contact_email: str


class Renderer:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.directory = directory
        # Plain-text e-mail: no HTML escaping; a missing variable is an error, not a blank.
        # A template's final newline is dropped, so that an included part ends where its
        # include tag stands.
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=False,
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )
        self.env.filters["full_stop"] = full_stop

    def has(self, template: str, language: Language) -> bool:
        return (self.directory / language.value / f"{template}.j2").exists()

    def render(
        self, template: str, language: Language, context: dict[str, Any]
    ) -> tuple[str, str, Language]:
        """(subject, body, language used): the recipient's language, else English."""
        if not self.has(template, language):
            language = FALLBACK
        context = {**context, "lang": language.value}
        text = self.env.get_template(f"{language.value}/{template}.j2").render(**context)
        subject, _, body = text.partition("\n")
        return subject.strip(), body.strip() + "\n", language


def organisation_for(contact: dict[str, Any], language: Language) -> str:
    """A company reader's own name for its name line (empty for other readers)."""
    ja, en = contact.get("organisation_ja"), contact.get("organisation_en")
    preferred = en if language is Language.EN else ja
    return str(preferred or ja or en or "")


def build_context(
    message: dict[str, Any],
    contact: dict[str, Any],
    language: Language,
    *,
    student_name: str | None,
    position: dict[str, Any] | None,
    site: Site,
) -> dict[str, Any]:
    """Everything a template may use, worded for `language` and the reader's time zone."""
    data: dict[str, Any] = message["data"]
    reader = message["recipient_kind"]
    zone = zone_of(contact, reader)
    context: dict[str, Any] = dict(data)
    context["recipient_name"] = contact["name"]
    context["recipient_organisation"] = organisation_for(contact, language)
    # A student whose contact is gone (erased) is named by role, never by their id.
    context["student_name"] = student_name or UNNAMED_STUDENT[language]
    context["ranked_count"] = len(data.get("ranked_position_ids", []))
    context["by_student"] = data.get("party") == "student"
    context["action_url"] = action_url(site.public_base_url, message["template"], data)
    context["contact_email"] = site.contact_email
    context["closed_count"] = len(data.get("closed_position_ids", []))
    if position is not None:
        context["position_title"] = position["title"]
        context["location"] = position["location"]
        context["company_name"] = company_name_for(position, language, reader)
        context["company_name_short"] = short_company_name(position, language)
        context["sector"] = sector_name(position["sector"], language)
        context["start_date"] = format_date(position["start_date"], language)
        context["end_date"] = format_date(position["end_date"], language)
    if data.get("respond_by"):
        context["respond_by"] = format_deadline(data["respond_by"], language, zone)
    if "residence_status" in data:
        context["residence"] = residence_text(data["residence_status"], language)
        context["residence_short"] = residence_short(data["residence_status"], language)
    if "window_end" in data:  # a failure digest: the window it covers, in the reader's zone
        context["window_start"] = format_deadline(data["window_start"], language, zone)
        context["window_end"] = format_deadline(data["window_end"], language, zone)
    if "by_sector" in data:
        context["by_sector"] = [
            {**s, "sector_name": sector_name(s["sector"], language)} for s in data["by_sector"]
        ]
    return context
