"""What the portal shows people instead of codes and ids: wards, the university's name, the
counts that say whether another match round makes sense, and CJK punctuation."""

from __future__ import annotations

import re

import pytest

from services.portal import i18n
from services.portal.domain import RoundOutlook, round_outlook
from services.portal.labels import LABELS, label, options, university_name
from services.portal.web import make_templates

WARDS = {
    "ja": ["門司区", "小倉北区", "小倉南区", "若松区", "八幡東区", "八幡西区", "戸畑区"],
    "zh-TW": ["門司區", "小倉北區", "小倉南區", "若松區", "八幡東區", "八幡西區", "戶畑區"],
}


@pytest.mark.parametrize("language", ["ja", "zh-TW"])
def test_the_seven_wards_in_each_language_with_the_codes_the_api_stores(language: str) -> None:
    i18n.use(language)
    try:
        choices = options("ward")
        assert [text for _, text in choices] == WARDS[language]
        # The values stay the romanised names companies have always sent (existing data).
        assert "Wakamatsu-ku" in dict(choices) and "Tobata-ku" in dict(choices)
        # A ward typed before the list existed still shows, as it was typed.
        assert label("ward", "Hibikino") == "Hibikino"
    finally:
        i18n.use("en")


def test_the_university_is_named_in_the_readers_language() -> None:
    name = "National Taipei University of Technology"
    assert university_name(name, "zh-TW") == "國立臺北科技大學"
    assert university_name(name, "ja") == "国立台北科技大学"
    assert university_name(name, "en") == name
    assert university_name("Another University", "ja") == "Another University"


def proposal(student: str, position: str, status: str) -> dict[str, str]:
    return {"student_id": student, "position_id": position, "status": status}


def test_the_round_outlook_counts_seats_applicants_and_answers() -> None:
    positions = [
        {"id": "p1", "capacity": 2, "state": "open"},
        {"id": "p2", "capacity": 1, "state": "open"},
        {"id": "p3", "capacity": 5, "state": "closed"},
    ]
    applications = [
        {"student_id": s, "state": st}
        for s, st in [("s1", "placed"), ("s2", "proposed"), ("s3", "declined"), ("s4", "withdrawn")]
    ]
    proposals = [
        proposal("s1", "p1", "confirmed"),
        proposal("s2", "p1", "proposed"),
        proposal("s3", "p2", "declined"),
    ]
    placements = [{"student_id": "s1", "position_id": "p1", "status": "confirmed"}]
    outlook = round_outlook(positions, applications, proposals, placements)
    # p1: 2 seats, held by s1's placement and s2's pending proposal; p2: its seat free again.
    assert outlook == RoundOutlook(free_seats=1, unplaced=1, pending=1)
    assert outlook.can_place

    # Every proposal answered and every seat taken: a round would place nobody.
    full = round_outlook(
        positions[:1],
        applications[:1],
        [proposal("s1", "p1", "confirmed")],
        [*placements, {"student_id": "s9", "position_id": "p1", "status": "confirmed"}],
    )
    assert full == RoundOutlook(free_seats=0, unplaced=0, pending=0)
    assert not full.can_place
    # A cancelled placement frees its seat and its student waits again.
    cancelled = round_outlook(
        positions[:1], applications[:1], [], [{**placements[0], "status": "cancelled"}]
    )
    assert cancelled == RoundOutlook(free_seats=2, unplaced=1, pending=0)


def render_steps(language: str, outlook: RoundOutlook | None, small: bool) -> str:
    env = make_templates().env
    i18n.use(language)
    try:
        module = env.get_template("macros.html").module
        cohort = {"id": "2027-summer", "name": "第2期生"}

        class Ctx:
            csrf = "t"

        return str(
            module.cohort_steps(  # type: ignore[attr-defined]
                Ctx(), cohort, ["run_round", "finish"], small=small, outlook=outlook
            )
        )
    finally:
        i18n.use("en")


def test_a_round_is_the_main_action_only_when_it_can_place_someone() -> None:
    useful = render_steps("en", RoundOutlook(free_seats=1, unplaced=2, pending=0), small=True)
    assert re.search(r'class="button small"[^>]*>Preview and run a round', useful)
    assert 'class="button secondary small"' in useful  # finishing is not the main step

    settled = render_steps("en", RoundOutlook(free_seats=0, unplaced=0, pending=0), small=False)
    assert "Preview and run a round" not in settled
    assert '<button type="submit" class="secondary">Run a match round' in settled
    assert 'class="button" href="/coordinator/cohorts/2027-summer/finish"' in settled
    assert "another round would propose nobody" in settled

    # Seats but nobody waiting for one (nobody applied, or everyone is placed).
    nobody = render_steps("en", RoundOutlook(free_seats=3, unplaced=0, pending=0), small=False)
    assert "No applicant is waiting for a seat" in nobody

    waiting = render_steps("ja", RoundOutlook(free_seats=0, unplaced=1, pending=1), small=False)
    assert "空き枠がないため" in waiting
    assert 'class="button secondary" href="/coordinator/cohorts/2027-summer/finish"' in waiting


@pytest.mark.parametrize("language", ["ja", "zh-TW"])
def test_cjk_pages_use_cjk_punctuation_and_terms(language: str) -> None:
    i18n.use(language)
    try:
        env = make_templates().env
        comma, semicolon = env.globals["comma"](), env.globals["semicolon"]()  # type: ignore[operator]
        assert (comma, semicolon) == ("、", "；")
        texts = [i18n.gettext(m) for kind in LABELS.values() for m in kind.values()]
        office = i18n.gettext(
            "City of Kitakyushu, Industrial Economy Bureau, Employment and Industrial HR Policy "
            "Division, with National Taipei University of Technology."
        )
        if language == "zh-TW":
            assert "人才" in office and "人材" not in office and "・" not in office
            stable = i18n.gettext("Stable (no blocking pair)")
            assert "阻礙" not in stable and "破壞穩定的配對" in stable
        else:
            assert i18n.gettext("Cohort") == "募集期"
            assert i18n.gettext("Cohorts") == "募集期の一覧"
            # Not 「ご回答：未回答」 (an honorific on an answer nobody gave).
            assert i18n.gettext("Your answer so far") == "現在の回答"
        assert not [t for t in texts if re.search(r"[^\x00-\x7f][,;]", t)]
    finally:
        i18n.use("en")
