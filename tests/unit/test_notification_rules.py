"""Who hears what and when, and which due messages are no longer wanted (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifications.domain import (
    COORDINATOR,
    REMINDER,
    MessageFacts,
    digest_window,
    is_real_address,
    plan,
    proposal_progress,
    to_coordinators,
    unwanted_reason,
)
from services.notifications.store import message_key
from shared.events import (
    ApplicationRef,
    ApplicationWithdrawn,
    CompanyStatusChanged,
    InternshipCompleted,
    MatchAccepted,
    MatchCancelled,
    MatchProposed,
    OutcomeRecorded,
    PlacementCancelled,
    RoundCompleted,
    make_event,
)

T0 = datetime(2027, 5, 1, tzinfo=UTC)
IDS = {
    "proposal_id": "p",
    "round_id": "r",
    "cohort_id": "c",
    "student_id": "s",
    "position_id": "pos",
    "company_id": "co",
}


def who(data: Any) -> list[tuple[str, str, str]]:
    event = make_event(data, source="/t", subject=data.key)
    return [(p.recipient_id, p.template, p.kind) for p in plan(event)]


def proposed(respond_within: timedelta) -> MatchProposed:
    return MatchProposed(
        **IDS,
        sector="automotive",
        student_rank=1,
        residence_status="temporary_visitor",
        respond_by=T0 + respond_within,
        proposed_at=T0,
        application_id="a",
    )


def test_a_proposal_plans_a_reminder_48_hours_before_its_deadline() -> None:
    event = make_event(proposed(timedelta(days=14)), source="/t", subject="p")
    planned = plan(event)
    assert [(p.recipient_id, p.template, p.kind) for p in planned] == [
        ("s", "match_proposed.student", ""),
        ("co", "match_proposed.company", ""),
        ("s", "answer_reminder.student", REMINDER),
        ("co", "answer_reminder.company", REMINDER),
    ]
    reminders = [p for p in planned if p.kind == REMINDER]
    assert {p.not_before for p in reminders} == {T0 + timedelta(days=12)}
    # A distinct log key per kind: the reminder never collides with the proposal message.
    assert message_key("e", "s") != message_key("e", "s", REMINDER)


def test_no_reminder_when_the_answer_period_is_shorter_than_its_lead_time() -> None:
    assert [t for _, t, _ in who(proposed(timedelta(hours=24)))] == [
        "match_proposed.student",
        "match_proposed.company",
    ]


def test_cancellations_tell_both_sides_and_never_an_erased_student() -> None:
    cancelled = MatchCancelled(
        **IDS, application_id="a", sector="automotive", reason="position_closed", cancelled_at=T0
    )
    assert who(cancelled) == [
        ("s", "match_cancelled.student", ""),
        ("co", "match_cancelled.company", ""),
    ]
    erased = cancelled.model_copy(update={"reason": "student_erased"})
    assert who(erased) == [("co", "match_cancelled.company", "")]
    placement = PlacementCancelled(
        **IDS,
        placement_id="pl",
        application_id="a",
        sector="automotive",
        reason="company_withdrew",
        cancelled_at=T0,
    )
    assert [t for _, t, _ in who(placement)] == [
        "placement_cancelled.student",
        "placement_cancelled.company",
        "placement_cancelled.coordinator",
    ]


def test_unmatched_students_hear_after_a_round() -> None:
    completed = RoundCompleted(
        round_id="r",
        cohort_id="c",
        round_number=1,
        algorithm_version="v",
        seed=1,
        input_hash="h",
        students=3,
        seats=1,
        proposed=1,
        unmatched=2,
        excluded_pairs=0,
        stable=True,
        completed_at=T0,
        unmatched_applications=[
            ApplicationRef(application_id="a1", student_id="s1"),
            ApplicationRef(application_id="a2", student_id="s2"),
        ],
    )
    assert who(completed) == [
        ("coordinator", "round_completed.coordinator", ""),
        ("s1", "not_matched.student", ""),
        ("s2", "not_matched.student", ""),
    ]


def test_each_unmatched_student_hears_of_their_own_application_from_a_part() -> None:
    """A part of applications-not-matched plans one notice per application; each message
    keeps its own application, never the part's list (a message's size stays bounded)."""
    from services.notifications.domain import shared_facts
    from services.notifications.store import base_doc, message_doc
    from shared.events import ApplicationsNotMatched

    part = ApplicationsNotMatched(
        round_id="r",
        cohort_id="c",
        round_number=1,
        part=2,
        parts=2,
        applications=[
            ApplicationRef(application_id="a1", student_id="s1"),
            ApplicationRef(application_id="a2", student_id="s2"),
        ],
        completed_at=T0,
    )
    event = make_event(part, source="/t", subject="c")
    planned = plan(event)
    assert [(p.recipient_id, p.template, dict(p.details)) for p in planned] == [
        ("s1", "not_matched.student", {"application_id": "a1"}),
        ("s2", "not_matched.student", {"application_id": "a2"}),
    ]
    base = base_doc(event, "applications-not-matched", {})
    message = message_doc(base, planned[1], T0)
    assert message["data"] == {
        **shared_facts(part.model_dump(mode="json")),
        "application_id": "a2",
    }
    assert "applications" not in message["data"] and message["data"]["round_number"] == 1


def test_withdrawals_the_student_asked_for_are_confirmed() -> None:
    def withdrawn(reason: str) -> list[tuple[str, str, str]]:
        return who(
            ApplicationWithdrawn(
                application_id="a", cohort_id="c", student_id="s", reason=reason, withdrawn_at=T0
            )
        )

    assert withdrawn("withdrawn") == [("s", "application_withdrawn.student", "")]
    assert withdrawn("consent_withdrawn") == [("s", "application_withdrawn.student", "")]
    assert withdrawn("replaced") == []  # an edit: the new application is confirmed instead
    assert withdrawn("erased") == []


def test_a_registration_is_confirmed_to_the_company() -> None:
    registered = CompanyStatusChanged(
        company_id="co", status="pending", sector="automotive", changed_at=T0
    )
    assert registered.previous_status is None
    assert who(registered) == [("co", "company_pending.company", "")]


def program_mails() -> list[Any]:
    round_done = RoundCompleted(
        round_id="r",
        cohort_id="c",
        round_number=1,
        students=3,
        seats=2,
        proposed=2,
        unmatched=1,
        excluded_pairs=0,
        stable=True,
        seed=1,
        algorithm_version="v",
        input_hash="h",
        unmatched_applications=[ApplicationRef(application_id="a", student_id="s")],
        completed_at=T0,
    )
    return plan(make_event(round_done, source="/t", subject="r"))


def test_program_mails_go_to_each_coordinator_who_subscribed_once() -> None:
    subscribers = {
        "coord-a": frozenset({"round_summary", "placements"}),
        "coord-b": frozenset({"placements"}),  # turned the round summary off
        "coord-c": frozenset({"round_summary", "delivery_failures"}),
    }
    planned = to_coordinators(program_mails(), subscribers, program_address=False)
    assert [(p.recipient_id, p.template) for p in planned] == [
        ("coord-a", "round_completed.coordinator"),
        ("coord-c", "round_completed.coordinator"),
        ("s", "not_matched.student"),  # the students' mails are left as they are
    ]
    # COORDINATOR_EMAIL, when it is a real address, is told too (backward compatible).
    planned = to_coordinators(program_mails(), {}, program_address=True)
    assert [p.recipient_id for p in planned] == [COORDINATOR, "s"]


def test_only_a_real_coordinator_email_counts() -> None:
    assert is_real_address("office@city.kitakyushu.lg.jp")
    assert not is_real_address("")
    assert not is_real_address("coordinator@kitakyushu-internships.invalid")  # the old default
    assert not is_real_address("someone@invalid")


def test_failures_are_told_per_window_not_per_mail() -> None:
    start, end = digest_window(datetime(2027, 5, 1, 10, 7, 59, tzinfo=UTC))
    assert (start, end) == (
        datetime(2027, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2027, 5, 1, 10, 15, tzinfo=UTC),
    )
    assert digest_window(datetime(2027, 5, 1, 10, 14, 59, tzinfo=UTC))[0] == start
    assert digest_window(end)[0] == end


def test_company_decisions_are_told() -> None:
    for status in ("approved", "rejected", "suspended"):
        decided = CompanyStatusChanged(
            company_id="co", status=status, sector="automotive", changed_at=T0
        )
        assert who(decided) == [("co", f"company_{status}.company", "")]


def test_a_completed_internship_thanks_both_sides_and_an_outcome_tells_nobody() -> None:
    facts = {**IDS, "placement_id": "pl", "application_id": "a", "sector": "automotive"}
    completed = InternshipCompleted(**facts, completed_on=T0.date(), recorded_at=T0)
    assert who(completed) == [
        ("s", "internship_completed.student", ""),
        ("co", "internship_completed.company", ""),
    ]
    outcome = OutcomeRecorded(**facts, outcome="hired_by_host", recorded_at=T0)
    assert who(outcome) == []  # the coordinator's own record; nobody needs a mail about it


def test_a_reminder_is_wanted_only_while_its_reader_has_not_answered() -> None:
    reminder = {"template": "answer_reminder.company", "recipient_kind": "company"}
    assert unwanted_reason(reminder, MessageFacts()) is None
    assert unwanted_reason(reminder, MessageFacts(proposal={"student_answered": True})) is None
    assert "already answered" in str(
        unwanted_reason(reminder, MessageFacts(proposal={"company_answered": True}))
    )
    assert "no longer waiting" in str(
        unwanted_reason(reminder, MessageFacts(proposal={"closed": True}))
    )
    assert unwanted_reason(reminder, MessageFacts(recipient_erased=True)) == "recipient erased"
    not_matched = {"template": "not_matched.student", "recipient_kind": "student"}
    assert unwanted_reason(not_matched, MessageFacts(application_withdrawn=True))


def test_answers_are_tracked_per_proposal() -> None:
    accepted = MatchAccepted(**IDS, party="company", accepted_at=T0)
    event = make_event(accepted, source="/t", subject="p")
    assert proposal_progress(event) == ("p", {"company_answered": True})
