"""The delivery log's notes: every reason the notifications service writes for a message it
did not send (yet) is said in the coordinator's language; a mail server's answer is kept as
it came. The reasons come from the notifications code that writes them, so a changed
wording there fails here rather than showing English on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services import notifications
from services.notifications import domain
from services.notifications.compose import Facts, TransientDeliveryError, compose
from services.notifications.rendering import Renderer, Site
from services.portal import i18n, labels
from services.portal.delivery_notes import KNOWN, DeliveryNote, delivery_note


def reminder(kind: str) -> dict[str, Any]:
    return {
        "recipient_id": "co-1" if kind == "company" else "stu-1",
        "recipient_kind": kind,
        "template": f"answer_reminder.{kind}",
        "data": {"proposal_id": "prop-1", "position_id": "pos-1", "student_id": "stu-1"},
    }


def transient(facts: Facts) -> str:
    with pytest.raises(TransientDeliveryError) as raised:
        compose(reminder("company"), facts, Renderer(), sender="c@x.example", site=Site("", ""))
    return str(raised.value)


def written_reasons() -> dict[str, str]:
    """What the notifications service writes, by what it means."""
    answered = domain.MessageFacts(proposal={"company_answered": True})
    no_position = Facts(contacts={"company:co-1": {"name": "HR", "email": "hr@x.example"}})
    return {
        "erased": domain.RECIPIENT_ERASED,
        "closed": domain.PROPOSAL_CLOSED,
        "answered (store)": domain.ALREADY_ANSWERED,
        "answered (sender)": str(domain.unwanted_reason(reminder("company"), answered)),
        "withdrawn": domain.APPLICATION_WITHDRAWN,
        "no contact": transient(Facts()),
        "no position": transient(no_position),
    }


@pytest.mark.parametrize("language", ["en", "ja", "zh-TW"])
def test_each_reason_the_sender_writes_is_said_in_words(language: str) -> None:
    i18n.use(language)
    sentences = {meaning: delivery_note(reason) for meaning, reason in written_reasons().items()}
    for meaning, note in sentences.items():
        assert note is not None and note.detail is None, meaning  # no English left over
    assert len({n.text for n in sentences.values() if n}) == 6  # both "answered" say the same
    if language != "en":
        english = {pattern.pattern: text for pattern, text, _ in KNOWN}
        assert not {n.text for n in sentences.values() if n} & set(english.values())


def test_a_give_up_keeps_its_reason_and_an_error_is_quoted_as_it_came() -> None:
    i18n.use("ja")
    gave_up = "gave up after 3601 s: no contact yet for stu-1"
    assert delivery_note(gave_up) == DeliveryNote(
        "送信に必要な情報が時間内に届かなかったため、送信を中止しました。", gave_up
    )
    refused = "SMTPRecipientsRefused: {'x@example.invalid': (550, '5.1.1 User unknown')}"
    assert delivery_note(refused) == DeliveryNote("送信エラー：", refused)
    refused = "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 2525)"
    assert delivery_note(refused) == DeliveryNote("送信エラー：", refused)
    assert delivery_note(None) is None and delivery_note("") is None


def test_every_kind_of_message_has_a_name_on_the_delivery_log() -> None:
    """The log names each message by what it is (its subject, when sent, is in the
    recipient's language): every template the notifications service has, and every kind of
    recipient, has a word, translated."""
    templates = sorted(
        path.stem
        for path in (Path(notifications.__file__).parent / "templates" / "en").glob("*.j2")
        if not path.name.startswith("_")
    )
    assert templates
    for language in ("ja", "zh-TW"):
        i18n.use(language)
        for template in templates:
            what, kind = template.split(".")
            for code, words in (("message", what), ("role", kind)):
                assert labels.LABELS[code].get(words), template
                assert labels.label(code, words) != labels.LABELS[code][words], template


def test_an_event_whose_mails_could_not_be_prepared_is_said_with_its_cause() -> None:
    """The entry the notifications service writes for a dead-lettered event (its template
    has no mail: it stands for the mails that could not be prepared)."""
    cause = "failed after 3 attempts: OperationFailure('Transaction is too large')"
    written = domain.NOT_PLANNED + cause
    for language in ("ja", "zh-TW"):
        i18n.use(language)
        note = delivery_note(written)
        assert note is not None and note.detail == written
        assert "Send again" not in note.text  # the button's own words, translated
        what = domain.NOT_PLANNED_TEMPLATE.split(".")[0]
        assert labels.label("message", what) != labels.LABELS["message"][what]
    i18n.use("en")
    note = delivery_note(written)
    assert note is not None and "“Send again”" in note.text
