"""Every message renders in every language with the facts a reader needs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from services.notifications.domain import format_deadline, plan
from services.notifications.rendering import TEMPLATES, Renderer, build_context
from shared.events import MatchAccepted, MatchProposed, make_event
from shared.events.vocabulary import Language

POSITION = {
    "title": "Wafer inspection software",
    "location": "Kitakyushu Science and Research Park",
    "company_name_ja": "響灘半導体株式会社",
    "company_name_en": "Hibikinada Semiconductor Co., Ltd.",
    "sector": "semiconductor",
    "start_date": "2027-07-01",
    "end_date": "2027-08-31",
}
DATA = {
    "application_id": "app-1",
    "proposal_id": "prop-1",
    "placement_id": "plc-1",
    "round_id": "round-2027-summer-1",
    "cohort_id": "2027-summer",
    "student_id": "stu-1",
    "position_id": "pos-1",
    "company_id": "co-1",
    "ranked_position_ids": ["pos-1", "pos-2"],
    "student_rank": 1,
    "respond_by": "2027-05-14T14:59:00+00:00",
    "residence_status": "designated_activities",
    "party": "student",
    "round_number": 1,
    "students": 11,
    "seats": 9,
    "proposed": 9,
    "unmatched": 2,
    "excluded_pairs": 3,
    "stable": True,
    "seed": 7,
    "algorithm_version": "student-proposing-da/numpy-rounds/1",
    "by_sector": [{"sector": "semiconductor", "proposed": 5, "seats": 5}],
}
ALL = sorted(p.stem for p in (TEMPLATES / "en").glob("*.j2"))
SCRIPT = {
    Language.JA: re.compile(r"[\u3040-\u30ff]"),  # kana: Japanese, not just kanji
    Language.ZH_TW: re.compile(r"[您請的]"),
    Language.EN: re.compile(r"\b(the|your|and)\b"),
}


def test_every_message_exists_in_every_language() -> None:
    for language in Language:
        names = sorted(p.stem for p in (TEMPLATES / language.value).glob("*.j2"))
        assert names == ALL, language


@pytest.mark.parametrize("template", ALL)
@pytest.mark.parametrize("language", list(Language))
def test_renders_with_the_facts(template: str, language: Language) -> None:
    context = build_context(
        DATA, language, recipient_name="林怡君", student_name="林怡君", position=POSITION
    )
    subject, body, used = Renderer().render(template, language, context)
    assert used is language
    assert subject and "\n" not in subject
    assert SCRIPT[language].search(subject + body), (template, language)
    assert "{{" not in body and "None" not in body
    if "proposal_id" in template or template.startswith("match_"):
        assert "prop-1" in body
    if template.startswith(("match_proposed", "match_accepted")):
        assert format_deadline(DATA["respond_by"], language) in body
    if template.startswith("placement_confirmed.s"):
        assert POSITION["title"] in body
        assert ("特定活動" in body) or ("Designated Activities" in body)
        assert ("2027年7月1日" in body) or ("1 July 2027" in body)


def test_deadline_is_local_time() -> None:
    moment = datetime(2027, 5, 14, 14, 59, tzinfo=UTC)
    assert format_deadline(moment, Language.JA) == "2027年5月14日 23:59（JST）"
    assert format_deadline(moment, Language.ZH_TW) == "2027年5月14日 22:59（台北時間）"
    assert format_deadline(moment, Language.EN) == "14 May 2027, 23:59 JST"


def test_who_hears_what() -> None:
    proposed = make_event(
        MatchProposed(
            proposal_id="p",
            round_id="r",
            cohort_id="c",
            student_id="s",
            position_id="pos",
            company_id="co",
            sector="automotive",
            student_rank=1,
            residence_status="temporary_visitor",
            respond_by=datetime(2027, 1, 1, tzinfo=UTC),
            proposed_at=datetime(2027, 1, 1, tzinfo=UTC),
        ),
        source="/t",
        subject="p",
    )
    assert [(p.recipient_id, p.template) for p in plan(proposed)] == [
        ("s", "match_proposed.student"),
        ("co", "match_proposed.company"),
    ]
    accepted = make_event(
        MatchAccepted(
            proposal_id="p",
            round_id="r",
            cohort_id="c",
            student_id="s",
            position_id="pos",
            company_id="co",
            party="student",
            accepted_at=datetime(2027, 1, 1, tzinfo=UTC),
        ),
        source="/t",
        subject="p",
    )
    # The company learns the student said yes; the student, who answered, is not re-told.
    assert [(p.recipient_id, p.template) for p in plan(accepted)] == [
        ("co", "match_accepted.company")
    ]
    # The second yes confirms the placement: its own messages tell everyone, nothing else.
    second = make_event(
        accepted.data.model_copy(update={"completes_placement": True}), source="/t", subject="p"
    )
    assert plan(second) == []


def test_missing_language_falls_back_to_english(tmp_path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "x.j2").write_text("Hello\nBody {{ recipient_name }}\n")
    subject, body, used = Renderer(tmp_path).render("x", Language.JA, {"recipient_name": "A"})
    assert (subject, body, used) == ("Hello", "Body A\n", Language.EN)
