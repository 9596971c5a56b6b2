"""The lifecycles as pure rules: cohort, company, application, proposal, placement."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.applications import lifecycle as apps
from services.applications.lifecycle import ApplicationState, ProposalProgress
from services.matching.domain import lifecycle as matching
from services.matching.domain.lifecycle import PlacementStatus, ProposalStatus
from shared.errors import DomainError
from shared.events.vocabulary import CohortState, CompanyStatus, Party, PositionClosedReason
from shared.states import IllegalTransition

T0 = datetime(2027, 3, 1, tzinfo=UTC)

# -- cohort ------------------------------------------------------------------------------


def test_cohort_goes_draft_open_closed_matching_finished() -> None:
    path = [
        CohortState.DRAFT,
        CohortState.OPEN,
        CohortState.CLOSED,
        CohortState.MATCHING,
        CohortState.FINISHED,
    ]
    for current, target in itertools.pairwise(path):
        apps.COHORT.check(current, target)
    assert apps.COHORT.is_terminal(CohortState.FINISHED)


def test_reopening_only_before_the_first_round() -> None:
    apps.COHORT.check(CohortState.CLOSED, CohortState.OPEN)  # no round yet: fine
    with pytest.raises(IllegalTransition) as err:
        apps.COHORT.check(CohortState.MATCHING, CohortState.OPEN, ident="2027-summer")
    assert err.value.status_code == 409
    assert err.value.extra == {"current_state": "matching", "allowed": ["finished"]}
    assert "'2027-summer' is matching" in err.value.reason


def test_a_round_moves_a_cohort_on_to_matching_once() -> None:
    assert apps.state_after_round(CohortState.CLOSED) is CohortState.MATCHING
    # A reopening that crossed a round in flight: the round happened, so matching it is.
    assert apps.state_after_round(CohortState.OPEN) is CohortState.MATCHING
    assert apps.state_after_round(CohortState.MATCHING) is None
    assert apps.state_after_round(CohortState.FINISHED) is None


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        (CohortState.DRAFT, ["open"]),
        (CohortState.OPEN, ["closed"]),
        (CohortState.FINISHED, []),
    ],
)
def test_a_round_needs_a_closed_window(state: CohortState, allowed: list[str]) -> None:
    with pytest.raises(DomainError) as err:
        matching.check_round_allowed("2027-summer", state)
    assert err.value.status_code == 409
    assert err.value.extra == {"current_state": state.value, "allowed": allowed}


def test_rounds_run_on_closed_and_matching_cohorts() -> None:
    matching.check_round_allowed("c", CohortState.CLOSED)
    matching.check_round_allowed("c", CohortState.MATCHING)


def test_cohort_actions_for_the_coordinators_page() -> None:
    assert apps.cohort_actions(CohortState.CLOSED) == ["open", "run_round"]
    assert apps.cohort_actions(CohortState.MATCHING) == ["finish"]
    assert apps.cohort_state({"state": "planned"}) is CohortState.DRAFT  # stored before v1.1


def test_positions_are_published_while_a_cohort_is_a_draft_or_open() -> None:
    apps.check_can_publish_positions({"_id": "c", "state": "draft"})
    apps.check_can_publish_positions({"_id": "c", "state": "open"})
    with pytest.raises(DomainError) as err:
        apps.check_can_publish_positions({"_id": "c", "state": "matching"})
    assert err.value.status_code == 409 and err.value.extra["current_state"] == "matching"


# -- company -----------------------------------------------------------------------------


def test_company_decisions() -> None:
    apps.COMPANY.check(CompanyStatus.PENDING, CompanyStatus.APPROVED)
    apps.COMPANY.check(CompanyStatus.APPROVED, CompanyStatus.SUSPENDED)
    apps.COMPANY.check(CompanyStatus.SUSPENDED, CompanyStatus.APPROVED)
    apps.COMPANY.check(CompanyStatus.APPROVED, CompanyStatus.REJECTED)
    with pytest.raises(IllegalTransition) as err:
        apps.COMPANY.check(CompanyStatus.APPROVED, CompanyStatus.APPROVED)
    assert err.value.extra["allowed"] == ["suspended", "rejected"]
    assert apps.POSITION_CLOSE_REASON[CompanyStatus.REJECTED] is (
        PositionClosedReason.COMPANY_REJECTED
    )
    assert apps.company_actions(CompanyStatus.PENDING) == ["approve", "reject"]


# -- application: one truthful state from facts in any order -------------------------------

OUTCOMES = ("pending", "accepted", "declined", "expired", "cancelled", "confirmed", "undone")
HOLDING = ("pending", "accepted", "confirmed")  # the student is not in later rounds


@st.composite
def histories(draw: Any) -> tuple[list[tuple[str, str]], int | None]:
    """A realistic history of one application: rounds that left it unmatched or proposed
    it, each proposal ending one way or another; optionally withdrawn at some step."""
    steps: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 4))):
        if steps and steps[-1][1] in HOLDING:
            break  # holding a proposal or a placement: not in the next round
        if draw(st.booleans()):
            steps.append(("round", "not_matched"))
        else:
            steps.append(("round", draw(st.sampled_from(OUTCOMES))))
    withdraw_after = draw(st.one_of(st.none(), st.integers(0, len(steps))))
    if withdraw_after is not None:
        # Not after a confirmation: the applications service refuses that (409).
        before = steps[:withdraw_after]
        if before and before[-1][1] == "confirmed":
            withdraw_after = None
    return steps, withdraw_after


def facts_of(history: tuple[list[tuple[str, str]], int | None]) -> list[tuple[str, Any]]:
    steps, withdraw_after = history
    out: list[tuple[str, Any]] = []
    for n, (_, outcome) in enumerate(steps):
        at = T0 + timedelta(days=10 * n)
        if withdraw_after == n:
            out.append(("withdrawn", at - timedelta(days=1)))
        if outcome == "not_matched":
            out.append(("not_matched", at))
            continue
        pid = f"prop-{n}"
        base = {"proposal_id": pid, "position_id": "pos", "round_id": f"r{n}"}
        out.append(
            (
                "fact",
                {
                    **base,
                    "status": ProposalProgress.PROPOSED,
                    "proposed_at": at,
                    "respond_by": at + timedelta(days=14),
                    "seen_at": at,
                },
            )
        )
        later = at + timedelta(hours=1)
        if outcome in ("accepted", "confirmed", "undone"):
            out.append(
                (
                    "fact",
                    {
                        **base,
                        "status": ProposalProgress.ACCEPTED,
                        "student_answer": "accepted",
                        "seen_at": later,
                    },
                )
            )
        ending = {
            "declined": ProposalProgress.DECLINED,
            "expired": ProposalProgress.EXPIRED,
            "cancelled": ProposalProgress.CANCELLED,
            "confirmed": ProposalProgress.CONFIRMED,
            "undone": ProposalProgress.CONFIRMED,
        }.get(outcome)
        if ending is not None:
            fact = {**base, "status": ending, "seen_at": later + timedelta(hours=1)}
            if ending is ProposalProgress.CONFIRMED:
                fact["placement_id"] = f"plc-{n}"
            out.append(("fact", fact))
        if outcome == "undone":
            out.append(
                (
                    "fact",
                    {
                        **base,
                        "status": ProposalProgress.PLACEMENT_CANCELLED,
                        "reason": "program_decision",
                        "seen_at": later + timedelta(days=2),
                    },
                )
            )
    if withdraw_after == len(steps):
        out.append(("withdrawn", T0 + timedelta(days=10 * len(steps))))
    return out


def fold(facts: list[tuple[str, Any]]) -> list[ApplicationState]:
    """Apply the facts one by one as the handlers do; the state after each."""
    doc: dict[str, Any] = {"proposals": {}, "not_matched": [], "withdrawn_at": None}
    states = []
    for kind, fact in facts:
        if kind == "withdrawn":
            doc["withdrawn_at"] = fact
        elif kind == "not_matched":
            doc["not_matched"].append({"round_id": str(fact), "at": fact})
        else:
            pid = fact["proposal_id"]
            doc["proposals"][pid] = apps.merge_proposal(doc["proposals"].get(pid), fact)
        states.append(ApplicationState(apps.application_view(doc)["state"]))
    return states


def expected_final(history: tuple[list[tuple[str, str]], int | None]) -> ApplicationState:
    steps, withdraw_after = history
    if withdraw_after is not None:
        return ApplicationState.WITHDRAWN
    if not steps:
        return ApplicationState.SUBMITTED
    return {
        "not_matched": ApplicationState.NOT_MATCHED,
        "pending": ApplicationState.PROPOSED,
        "accepted": ApplicationState.PROPOSED,
        "declined": ApplicationState.DECLINED,
        "expired": ApplicationState.EXPIRED,
        "cancelled": ApplicationState.CANCELLED,
        "confirmed": ApplicationState.PLACED,
        "undone": ApplicationState.CANCELLED,
    }[steps[-1][1]]


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_application_state_tells_the_truth_whatever_the_order(
    history: tuple[list[tuple[str, str]], int | None], rng: Any
) -> None:
    facts = facts_of(history)
    in_order = fold(facts)
    final = in_order[-1] if in_order else ApplicationState.SUBMITTED
    assert final is expected_final(history)
    # In order, every change is a transition the machine allows.
    previous = ApplicationState.SUBMITTED
    for state in in_order:
        assert state is previous or apps.APPLICATION.can(previous, state), (previous, state)
        previous = state
    # Events of different topics arrive in any order: the end is the same.
    shuffled = list(facts)
    rng.shuffle(shuffled)
    assert (fold(shuffled) or [ApplicationState.SUBMITTED])[-1] is final


def test_a_late_proposed_event_does_not_undo_a_decline() -> None:
    declined = {
        "proposal_id": "p",
        "status": ProposalProgress.DECLINED,
        "seen_at": T0 + timedelta(hours=2),
    }
    proposed = {
        "proposal_id": "p",
        "status": ProposalProgress.PROPOSED,
        "proposed_at": T0,
        "respond_by": T0 + timedelta(days=14),
        "seen_at": T0,
    }
    merged = apps.merge_proposal(apps.merge_proposal(None, declined), proposed)
    assert merged["status"] == "declined"
    assert merged["seen_at"] == T0 and merged["respond_by"] == T0 + timedelta(days=14)


def test_the_view_shows_the_pending_proposal_and_its_deadline() -> None:
    doc = {
        "proposals": {
            "p": {
                "proposal_id": "p",
                "status": "accepted",
                "company_answer": "accepted",
                "proposed_at": T0,
                "seen_at": T0,
                "respond_by": T0 + timedelta(days=14),
            }
        },
        "not_matched": [],
        "withdrawn_at": None,
    }
    view = apps.application_view(doc)
    assert view["state"] == "proposed"
    assert (view["proposal_id"], view["respond_by"]) == ("p", T0 + timedelta(days=14))
    actions = apps.student_actions({**doc, **view}, window_open=False)
    assert actions == ["accept_proposal", "decline_proposal", "withdraw"]


def test_withdrawal_is_refused_after_confirmation() -> None:
    apps.check_withdrawable({"_id": "a", "state": "proposed"})
    apps.check_withdrawable({"_id": "a", "state": "not_matched"})
    with pytest.raises(DomainError) as err:
        apps.check_withdrawable({"_id": "a", "state": "placed"})
    assert err.value.status_code == 409
    assert err.value.extra == {"current_state": "placed", "allowed": []}
    assert "coordinator" in err.value.reason
    with pytest.raises(IllegalTransition):
        apps.check_withdrawable({"_id": "a", "state": "withdrawn"})


def test_consent_withdrawal_leaves_a_confirmed_placement_to_the_coordinator() -> None:
    docs = [
        {"_id": "a", "state": "proposed"},
        {"_id": "b", "state": "placed"},
        {"_id": "c", "state": "withdrawn"},
        {"_id": "d", "state": "not_matched"},
    ]
    assert [d["_id"] for d in apps.withdrawn_by_consent(docs)] == ["a", "d"]
    with pytest.raises(DomainError) as err:
        apps.check_erasable(docs, "stu-1")
    assert err.value.status_code == 409


def test_only_a_submitted_application_is_edited() -> None:
    apps.check_editable({"_id": "a", "state": "submitted"})
    with pytest.raises(DomainError) as err:
        apps.check_editable({"_id": "a", "state": "not_matched"})
    assert err.value.extra["current_state"] == "not_matched"


# -- proposal and placement ----------------------------------------------------------------


def proposal(**over: Any) -> dict[str, Any]:
    return {
        "_id": "prop-1",
        "status": "proposed",
        "student_answer": None,
        "company_answer": None,
        "respond_by": T0 + timedelta(days=14),
        **over,
    }


def test_both_accept_confirms() -> None:
    p = proposal()
    status, completes = matching.answer(p, Party.STUDENT, True, T0)
    assert (status, completes) == (ProposalStatus.ACCEPTED, False)
    p = proposal(status="accepted", student_answer="accepted")
    status, completes = matching.answer(p, Party.COMPANY, True, T0)
    assert (status, completes) == (ProposalStatus.CONFIRMED, True)


def test_a_decline_after_one_acceptance_declines() -> None:
    p = proposal(status="accepted", company_answer="accepted")
    assert matching.answer(p, Party.STUDENT, False, T0) == (ProposalStatus.DECLINED, False)


@pytest.mark.parametrize("status", ["cancelled", "declined", "expired", "confirmed"])
def test_an_ended_proposal_cannot_be_answered(status: str) -> None:
    with pytest.raises(DomainError) as err:
        matching.answer(proposal(status=status), Party.STUDENT, True, T0)
    assert err.value.status_code == 409
    assert err.value.extra == {"current_state": status, "allowed": []}
    assert f"already {status}" in err.value.reason


def test_no_second_answer_and_no_answer_after_the_deadline() -> None:
    with pytest.raises(DomainError, match="already answered"):
        matching.answer(
            proposal(status="accepted", student_answer="accepted"), Party.STUDENT, False, T0
        )
    with pytest.raises(DomainError, match="deadline") as err:
        matching.answer(proposal(), Party.COMPANY, True, T0 + timedelta(days=15))
    assert err.value.extra["allowed"] == ["expired"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Party)), st.booleans()), max_size=4))
def test_any_sequence_of_answers_follows_the_machine(answers: list[tuple[Party, bool]]) -> None:
    p = proposal()
    for party, accept in answers:
        current = ProposalStatus(p["status"])
        try:
            target, completes = matching.answer(p, party, accept, T0)
        except DomainError as err:
            assert err.status_code == 409
            continue
        assert matching.PROPOSAL.can(current, target)
        assert completes is (target is ProposalStatus.CONFIRMED)
        p = {**p, "status": target.value, f"{party.value}_answer": "accepted" if accept else "x"}
    if ProposalStatus(p["status"]) is ProposalStatus.CONFIRMED:
        assert p["student_answer"] == p["company_answer"] == "accepted"


def test_placement_is_cancelled_once() -> None:
    matching.PLACEMENT.check(PlacementStatus.CONFIRMED, PlacementStatus.CANCELLED)
    with pytest.raises(IllegalTransition) as err:
        matching.PLACEMENT.check(PlacementStatus.CANCELLED, PlacementStatus.CANCELLED)
    assert err.value.extra == {"current_state": "cancelled", "allowed": []}


def test_who_holds_a_seat() -> None:
    assert matching.holds_seat({"status": "proposed"})
    assert matching.holds_seat({"status": "accepted"})
    assert matching.holds_seat({"status": "confirmed"})
    assert not matching.holds_seat({"status": "confirmed", "placement_status": "cancelled"})
    assert not matching.holds_seat({"status": "cancelled"})


def test_actions_a_page_offers() -> None:
    p = proposal(status="accepted", company_answer="accepted")
    assert matching.party_actions(p, Party.STUDENT, T0) == ["accept", "decline"]
    assert matching.party_actions(p, Party.COMPANY, T0) == []
    assert matching.party_actions(p, None, T0) == ["cancel"]
    assert matching.party_actions(p, Party.STUDENT, T0 + timedelta(days=20)) == []


def test_cancellation_reasons_follow_what_removed_the_ground() -> None:
    assert matching.cancel_reason_for_withdrawal("erased").value == "student_erased"
    assert matching.cancel_reason_for_withdrawal("replaced").value == "application_withdrawn"
    assert matching.cancel_reason_for_withdrawal("consent_withdrawn").value == "consent_withdrawn"
    assert matching.cancel_reason_for_closing(None).value == "position_closed"
    assert (
        matching.cancel_reason_for_closing(PositionClosedReason.COMPANY_SUSPENDED).value
        == "company_suspended"
    )
    assert matching.placement_reason_for_withdrawal("erased").value == "student_erased"


def test_a_placement_confirmed_after_its_position_closed_is_cancelled() -> None:
    closed_at = T0 + timedelta(hours=1)
    before = {"status": "confirmed", "confirmed_at": T0}
    after = {"status": "confirmed", "confirmed_at": T0 + timedelta(hours=2)}
    assert not matching.confirmed_after_closing(before, closed_at)  # it stands
    assert matching.confirmed_after_closing(after, closed_at)  # it crossed the closing
    assert not matching.confirmed_after_closing({**after, "status": "cancelled"}, closed_at)
    assert (
        matching.placement_reason_for_closing(PositionClosedReason.COMPANY_REJECTED).value
        == "company_rejected"
    )
