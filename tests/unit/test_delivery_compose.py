"""Composing a message from batch facts, the "still wanted" rule, and the mailer's pure
parts (rate spacing, permanent refusals), without servers."""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes, policy
from typing import Any

import aiosmtplib
import pytest
from aiosmtplib.email import flatten_message

from services.notifications.compose import (
    Facts,
    TransientDeliveryError,
    compose,
    message_header_id,
)
from services.notifications.domain import unwanted_reason
from services.notifications.rendering import Renderer, Site
from services.notifications.smtp_pool import RateLimit, is_permanent

SITE = Site("https://internships.example", "questions@example.invalid")

POSITION = {
    "title": "Wafer inspection software",
    "location": "Kitakyushu Science and Research Park",
    "company_name_ja": "響灘半導体株式会社",
    "company_name_en": "Hibikinada Semiconductor Co., Ltd.",
    "sector": "semiconductor",
    "start_date": "2027-07-01",
    "end_date": "2027-08-31",
}


def proposal_to_company() -> dict[str, Any]:
    return {
        "_id": "evt-1:co-1",
        "event_id": "evt-1",
        "recipient_id": "co-1",
        "recipient_kind": "company",
        "template": "match_proposed.company",
        "attempts": 0,
        "data": {
            "proposal_id": "prop-1",
            "round_id": "round-1",
            "cohort_id": "2027-summer",
            "student_id": "stu-1",
            "position_id": "pos-1",
            "company_id": "co-1",
            "student_rank": 1,
            "respond_by": "2027-05-14T14:59:00+00:00",
            "residence_status": "designated_activities",
        },
    }


def facts() -> Facts:
    return Facts(
        contacts={
            # Keyed by role and id, as the contacts topic keys them.
            "company:co-1": {
                "name": "山田 花子",
                "email": "hr@co.example",
                "preferred_language": "ja",
            },
            "student:stu-1": {
                "name": "林怡君",
                "email": "yj@example.tw",
                "preferred_language": "zh-TW",
            },
        },
        positions={"pos-1": POSITION},
    )


def test_a_message_is_composed_from_the_batch_facts() -> None:
    composed = compose(
        proposal_to_company(), facts(), Renderer(), sender="City <c@x.example>", site=SITE
    )
    assert composed.language == "ja"
    assert composed.to == "山田 花子 <hr@co.example>"
    assert "林怡君" in composed.body  # the student's name, from the same facts
    # What a mail client reads back from the wire.
    wire = message_from_bytes(flatten_message(composed.email), policy=policy.default)
    assert str(wire["To"]) == "山田 花子 <hr@co.example>"
    assert str(wire["Subject"]) == composed.subject and "マッチング" in composed.subject
    assert wire["Message-ID"] == message_header_id("evt-1:co-1")
    assert wire["X-Template"] == "match_proposed.company"
    assert wire["Content-Language"] == "ja"
    assert wire.get_content() == composed.body


def test_a_line_break_in_a_name_cannot_add_a_header() -> None:
    known = facts()
    known.contacts["company:co-1"]["name"] = "山田\r\nBcc: victim@example.com"
    composed = compose(proposal_to_company(), known, Renderer(), sender="c@x.example", site=SITE)
    wire = message_from_bytes(flatten_message(composed.email), policy=policy.default)
    assert wire["Bcc"] is None
    assert wire["To"].addresses[0].addr_spec == "hr@co.example"


def test_the_message_id_is_stable_per_event_and_recipient() -> None:
    assert message_header_id("evt-1:co-1") == message_header_id("evt-1:co-1")
    assert message_header_id("evt-1:co-1") != message_header_id("evt-1:stu-1")


@pytest.mark.parametrize("missing", ["contact", "position"])
def test_missing_facts_mean_later_not_never(missing: str) -> None:
    known = facts()
    if missing == "contact":
        del known.contacts["company:co-1"]
    else:
        known.positions.clear()
    with pytest.raises(TransientDeliveryError, match=missing):
        compose(proposal_to_company(), known, Renderer(), sender="c@x.example", site=SITE)


def test_a_message_to_an_erased_party_is_no_longer_wanted() -> None:
    known = facts()
    assert unwanted_reason(proposal_to_company(), known.about(proposal_to_company())) is None
    known.erased.add("company:co-1")
    assert (
        unwanted_reason(proposal_to_company(), known.about(proposal_to_company()))
        == "recipient erased"
    )


def test_the_batch_facts_tell_each_message_what_the_rules_need() -> None:
    reminder = proposal_to_company() | {"template": "answer_reminder.company", "kind": "reminder"}
    known = facts()
    assert known.about(reminder).proposal is None
    known.proposals["prop-1"] = {"_id": "prop-1", "company_answered": True}
    assert unwanted_reason(reminder, known.about(reminder)) == "the company has already answered"
    assert unwanted_reason(reminder | {"recipient_kind": "student"}, known.about(reminder)) is None

    not_matched = {
        "recipient_id": "stu-1",
        "recipient_kind": "student",
        "template": "not_matched.student",
        "data": {
            "unmatched_applications": [
                {"student_id": "stu-1", "application_id": "app-1"},
                {"student_id": "stu-2", "application_id": "app-2"},
            ]
        },
    }
    known.withdrawn_applications.add("app-2")  # another student's: not this one's business
    assert not known.about(not_matched).application_withdrawn
    known.withdrawn_applications.add("app-1")
    assert unwanted_reason(not_matched, known.about(not_matched)) == (
        "the application was withdrawn meanwhile"
    )


async def test_the_rate_limit_spaces_starts_evenly() -> None:
    limit = RateLimit(per_second=50)
    starts: list[float] = []

    async def one() -> None:
        await limit.wait()
        starts.append(time.monotonic())

    began = time.monotonic()
    await asyncio.gather(*(one() for _ in range(10)))
    # Slots are reserved 1/50 s apart from the first: the tenth cannot start before 9/50 s.
    assert starts[-1] - began >= 9 / 50


def test_no_rate_limit_means_no_wait() -> None:
    waiting = RateLimit(per_second=None).wait()
    with pytest.raises(StopIteration):  # finishes without ever suspending
        waiting.send(None)


def test_only_a_refusal_of_every_recipient_for_good_is_permanent() -> None:
    refused = aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@x.example")
    busy = aiosmtplib.SMTPRecipientRefused(451, "try later", "a@x.example")
    assert is_permanent(refused)
    assert is_permanent(aiosmtplib.SMTPRecipientsRefused([refused]))
    assert not is_permanent(aiosmtplib.SMTPRecipientsRefused([refused, busy]))
    assert not is_permanent(busy)
    assert not is_permanent(aiosmtplib.SMTPServerDisconnected("gone"))
    assert not is_permanent(aiosmtplib.SMTPSenderRefused(550, "bad sender", "c@x.example"))
