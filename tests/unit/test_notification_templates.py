"""Every message renders in every language with the facts a reader needs, in the register
its reader expects, with a link to where they act and a contact address."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifications.rendering import TEMPLATES, Renderer, Site, build_context
from services.notifications.wording import ACTION_PATHS, format_deadline, full_stop
from shared.events.vocabulary import Language, MatchCancelReason, PlacementCancelReason

SITE = Site(public_base_url="https://internships.example.jp/", contact_email="help@city.example")
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
    "reason": "withdrawn",
    "note_code": None,
    "status": "approved",
    "closed_position_ids": ["pos-1", "pos-2"],
    "failed_count": 3,
    "window_start": "2027-05-14T01:00:00+00:00",
    "window_end": "2027-05-14T01:15:00+00:00",
}
CONTACTS = {
    "student": {"name": "林怡君", "time_zone": "Asia/Taipei"},
    "company": {
        "name": "山田 花子",
        "organisation_ja": "響灘半導体株式会社",
        "organisation_en": "Hibikinada Semiconductor Co., Ltd.",
        "time_zone": "Asia/Tokyo",
    },
    "coordinator": {"name": "雇用・産業人材政策課 ご担当者", "time_zone": "Asia/Tokyo"},
}
ALL = sorted(p.stem for p in (TEMPLATES / "en").glob("*.j2") if not p.name.startswith("_"))
SCRIPT = {
    Language.JA: re.compile(r"[\u3040-\u30ff]"),  # kana: Japanese, not just kanji
    Language.ZH_TW: re.compile(r"[您請的]"),
    Language.EN: re.compile(r"\b(the|your|and)\b"),
}
# Every reason each cancellation template words.
REASONS = {
    "match_cancelled": [r.value for r in MatchCancelReason],
    "placement_cancelled": [r.value for r in PlacementCancelReason],
    "application_withdrawn": ["withdrawn", "consent_withdrawn"],
    "match_declined": ["-"],
}


def render(template: str, language: Language, **data: Any) -> tuple[str, str]:
    reader = template.rsplit(".", 1)[1]
    message = {"data": {**DATA, **data}, "template": template, "recipient_kind": reader}
    context = build_context(
        message, CONTACTS[reader], language, student_name="林怡君", position=POSITION, site=SITE
    )
    subject, body, used = Renderer().render(template, language, context)
    assert used is language
    return subject, body


def variants(template: str) -> list[dict[str, Any]]:
    """The data variants a template words differently: every reason, with and without a note."""
    family = template.split(".")[0]
    if family == "match_declined":
        return [{"party": "student"}, {"party": "company"}]
    out: list[dict[str, Any]] = [{"reason": r} for r in REASONS.get(family, ["withdrawn"])]
    if family == "placement_cancelled":
        out.append({"reason": "other", "note_code": "KK-2027-014"})
    if family == "company_rejected":
        out.append({"closed_position_ids": []})
    return out


def test_every_message_exists_in_every_language_and_has_a_link() -> None:
    for language in Language:
        names = sorted(
            p.stem for p in (TEMPLATES / language.value).glob("*.j2") if not p.name.startswith("_")
        )
        assert names == ALL, language
    assert set(ALL) == set(ACTION_PATHS)


@pytest.mark.parametrize("template", ALL)
@pytest.mark.parametrize("language", list(Language))
def test_renders_with_the_facts_a_link_and_a_contact(template: str, language: Language) -> None:
    for variant in variants(template):
        subject, body = render(template, language, **variant)
        text = subject + "\n" + body
        assert subject and "\n" not in subject
        assert SCRIPT[language].search(text), (template, language)
        assert "{{" not in body and "None" not in body and "  \n" not in body
        # Where the reader acts, and whom to ask.
        assert "https://internships.example.jp/" in body, (template, language)
        assert "//" not in body.split("https://", 1)[1].split()[0], "doubled slash in the link"
        assert SITE.contact_email in body, (template, language)
        # No internal id anywhere a person reads (links may carry them).
        readable = re.sub(r"https?://\S+", "", text)
        ids = ("app-1", "prop-1", "plc-1", "round-2027", "2027-summer", "stu-1", "pos-1", "co-1")
        assert not [i for i in ids if i in readable], (template, language, readable)
        if template.startswith(("match_proposed", "answer_reminder")):
            assert "prop-1" in body  # the link to the proposal
        if template.startswith(("match_proposed", "match_accepted", "answer_reminder")):
            zone = "Asia/Taipei" if template.endswith(".student") else "Asia/Tokyo"
            assert format_deadline(DATA["respond_by"], language, zone) in body
        if template.startswith("placement_confirmed.s"):
            assert POSITION["title"] in body
            assert ("特定活動" in body) or ("Designated Activities" in body)
            assert ("2027年7月1日" in body) or ("1 July 2027" in body)
        # No line names the residence status twice ("在留資格：在留資格「…」").
        assert not any(line.count("在留資格") > 1 for line in text.splitlines())
        check_register(template, language, text)


def check_register(template: str, language: Language, text: str) -> None:
    reader = template.rsplit(".", 1)[1]
    if language is Language.JA:
        assert "あなた" not in text, template
        if reader == "company":
            for required in (
                "響灘半導体株式会社\n山田 花子 様",
                "いつもお世話になっております",
                "北九州市 産業経済局 雇用・産業人材政策課",
                "何卒よろしくお願い申し上げます",
                "送信専用",
            ):
                assert required in text, (template, required)
            # Business register: いたします / くださいますよう, not plain します / ください.
            assert not re.search(r"(?<!いた)します", text), template
            assert not re.search(r"ください(?!ますよう)", text), template
        if reader == "student":
            assert "林怡君 様" in text
    if language is Language.ZH_TW:
        for wrong in ("接待企業", "實習單位", "台北時間", "市府承辦", "實習確定編號"):
            assert wrong not in text, (template, wrong)
        if "placement_id" in text or "plc-1" in text:
            assert "實習確認編號：plc-1" in text, template
        if reader == "student" and "company_name" in template_source(template, language):
            assert POSITION["company_name_en"] in text, template  # not only the Japanese name
        if reader == "student":
            assert "同學，您好" in text
    if language is Language.EN:
        assert "Ltd.." not in text and ".." not in text.replace("...", ""), template
        if reader == "student" and "company_name" in template_source(template, language):
            assert POSITION["company_name_en"] in text
        if reader == "company":
            assert "Hibikinada Semiconductor Co., Ltd.\nDear 山田 花子," in text


def template_source(template: str, language: Language) -> str:
    return (TEMPLATES / language.value / f"{template}.j2").read_text(encoding="utf-8")


def test_deadlines_are_in_the_readers_own_time_zone() -> None:
    moment = datetime(2027, 5, 14, 14, 59, tzinfo=UTC)
    assert format_deadline(moment, Language.JA, "Asia/Tokyo") == "2027年5月14日 23:59（日本時間）"
    assert (
        format_deadline(moment, Language.ZH_TW, "Asia/Taipei") == "2027年5月14日 22:59（臺灣時間）"
    )
    assert format_deadline(moment, Language.EN, "Asia/Taipei") == "14 May 2027, 22:59 (Taiwan time)"
    # A student who reads English but lives in Japan sees Japan time: zone, not language.
    assert format_deadline(moment, Language.EN, "Asia/Tokyo") == "14 May 2027, 23:59 (Japan time)"
    assert (
        format_deadline(moment, Language.EN, "Europe/Berlin")
        == "14 May 2027, 16:59 (Europe/Berlin, UTC+02:00)"
    )


def test_a_student_reading_japanese_gets_taipei_time_by_default() -> None:
    message = {"data": DATA, "template": "match_proposed.student", "recipient_kind": "student"}
    context = build_context(
        message, {"name": "林"}, Language.JA, student_name=None, position=POSITION, site=SITE
    )
    assert context["respond_by"] == "2027年5月14日 22:59（台湾時間）"


def test_full_stop_is_not_doubled() -> None:
    assert full_stop("Hibikinada Semiconductor Co., Ltd.") == "Hibikinada Semiconductor Co., Ltd."
    assert full_stop("Kokura Robotics") == "Kokura Robotics."


def test_links_follow_the_portal_url_scheme() -> None:
    _, body = render("match_proposed.company", Language.EN)
    assert "https://internships.example.jp/company/proposals/prop-1" in body
    _, body = render("round_completed.coordinator", Language.JA)
    assert "https://internships.example.jp/coordinator/rounds/round-2027-summer-1" in body


def test_missing_language_falls_back_to_english(tmp_path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "x.j2").write_text("Hello\nBody {{ recipient_name }}\n")
    subject, body, used = Renderer(tmp_path).render("x", Language.JA, {"recipient_name": "A"})
    assert (subject, body, used) == ("Hello", "Body A\n", Language.EN)


def test_deadline_used_by_the_reminder_is_48_hours_ahead() -> None:
    from services.notifications.domain import REMINDER_BEFORE, reminder_time

    proposed = datetime(2027, 5, 1, tzinfo=UTC)
    assert (
        reminder_time(proposed + timedelta(days=14), proposed)
        == proposed + timedelta(days=14) - REMINDER_BEFORE
    )
    assert reminder_time(proposed + timedelta(hours=47), proposed) is None


def test_a_registration_is_confirmed_with_what_happens_next() -> None:
    expected = {
        Language.JA: ("受け付けました", "審査", "メールにてご連絡いたします", "サインイン"),
        Language.ZH_TW: ("已收到", "審核", "電子郵件", "登入"),
        Language.EN: ("received", "reviews your registration", "by e-mail", "sign in"),
    }
    for language, phrases in expected.items():
        subject, body = render("company_pending.company", language)
        text = subject + "\n" + body
        for phrase in phrases:
            assert phrase in text, (language, phrase)
        # It may not sign in yet: the link is the public call it answered.
        assert "https://internships.example.jp/call\n" in body


def test_failures_are_told_as_a_count_over_a_window_in_the_readers_zone() -> None:
    subject, body = render("delivery_failures.coordinator", Language.JA)
    assert "3件" in subject
    assert "2027年5月14日 10:00（日本時間）から2027年5月14日 10:15（日本時間）まで" in body
    assert "https://internships.example.jp/coordinator/deliveries\n" in body
    subject, _ = render("delivery_failures.coordinator", Language.EN, failed_count=1)
    assert subject == "Delivery failed: 1 e-mail could not be sent"


@pytest.mark.parametrize("language", list(Language))
def test_a_student_without_a_contact_is_named_by_role_not_by_id(language: Language) -> None:
    message = {"data": DATA, "template": "match_declined.company", "recipient_kind": "company"}
    context = build_context(
        message, CONTACTS["company"], language, student_name=None, position=POSITION, site=SITE
    )
    subject, body, _ = Renderer().render("match_declined.company", language, context)
    assert "stu-1" not in subject + body
    assert context["student_name"] in subject


def test_english_subjects_say_plainly_who_declined() -> None:
    by_student, _ = render("match_declined.company", Language.EN, party="student")
    by_company, _ = render("match_declined.company", Language.EN, party="company")
    assert by_student == "林怡君 declined the proposal for Wafer inspection software"
    assert by_company == "You declined 林怡君 for Wafer inspection software"
    assert "proposal of" not in render("match_expired.company", Language.EN)[0]
