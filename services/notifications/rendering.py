"""Messages rendered from Jinja2 templates: one file per message and language under
templates/<language>/<message>.j2; the first line is the subject, the rest the body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.notifications.domain import (
    FALLBACK,
    RESIDENCE,
    format_date,
    format_deadline,
    residence_text,
    sector_name,
)
from shared.events.vocabulary import Language

TEMPLATES = Path(__file__).resolve().parent / "templates"


class Renderer:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.directory = directory
        # Plain-text e-mail: no HTML escaping; a missing variable is an error, not a blank.
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=False,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def has(self, template: str, language: Language) -> bool:
        return (self.directory / language.value / f"{template}.j2").exists()

    def render(
        self, template: str, language: Language, context: dict[str, Any]
    ) -> tuple[str, str, Language]:
        """(subject, body, language used): the recipient's language, else English."""
        if not self.has(template, language):
            language = FALLBACK
        text = self.env.get_template(f"{language.value}/{template}.j2").render(**context)
        subject, _, body = text.partition("\n")
        return subject.strip(), body.strip() + "\n", language


def build_context(
    data: dict[str, Any],
    language: Language,
    *,
    recipient_name: str,
    student_name: str | None,
    position: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything a template may use, worded for `language`."""
    context: dict[str, Any] = dict(data)
    context["recipient_name"] = recipient_name
    context["student_name"] = student_name or data.get("student_id", "")
    context["ranked_count"] = len(data.get("ranked_position_ids", []))
    context["by_student"] = data.get("party") == "student"
    if position is not None:
        context["position_title"] = position["title"]
        context["location"] = position["location"]
        context["company_name"] = (
            position["company_name_en"] if language is Language.EN else position["company_name_ja"]
        )
        context["sector"] = sector_name(position["sector"], language)
        context["start_date"] = format_date(position["start_date"], language)
        context["end_date"] = format_date(position["end_date"], language)
    if data.get("respond_by"):
        context["respond_by"] = format_deadline(data["respond_by"], language)
    if "residence_status" in data:
        context["residence"] = residence_text(data["residence_status"], language)
        context["residence_short"] = RESIDENCE[data["residence_status"]][language.value].split(
            "：" if language is not Language.EN else ":"
        )[0]
    if "by_sector" in data:
        context["by_sector"] = [
            {**s, "sector_name": sector_name(s["sector"], language)} for s in data["by_sector"]
        ]
    return context
