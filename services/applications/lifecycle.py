"""Lifecycles the applications service owns (pure, no I/O): cohort, company, application.

The cohort and the company change only by the coordinator's hand. An application changes by
the student's hand (submit, withdraw) and by the facts matching reports (proposed, accepted,
declined, expired, cancelled, confirmed, placement cancelled, left unmatched by a round).
Those facts travel on different topics and may arrive in any order, so the application's
state is *derived* from everything known about it rather than stepped event by event; the
machine below is what the derived state follows when the facts arrive in order (a property
test checks both) and what a student's own actions are checked against.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import DomainError, conflict
from shared.events.vocabulary import (
    COHORT_TRANSITIONS,
    CohortState,
    CompanyStatus,
    PositionClosedReason,
)
from shared.states import StateMachine

Doc = dict[str, Any]

# -- cohort ------------------------------------------------------------------------------

COHORT = StateMachine("cohort", COHORT_TRANSITIONS)

# What the coordinator does to reach each state (for the pages' buttons).
COHORT_ACTIONS = {
    CohortState.OPEN: "open",
    CohortState.CLOSED: "close",
    CohortState.MATCHING: "run_round",  # on the matching service: POST /rounds
    CohortState.FINISHED: "finish",
}


def cohort_state(cohort: Doc) -> CohortState:
    # "planned" is what cohorts created before the lifecycle was modelled were called.
    value = cohort["state"]
    return CohortState.DRAFT if value == "planned" else CohortState(value)


def cohort_actions(state: CohortState) -> list[str]:
    actions = [COHORT_ACTIONS[s] for s in COHORT.allowed(state)]
    if state is CohortState.MATCHING:
        # Residual rounds: not a transition (the cohort stays matching), but a step all the same.
        actions.insert(0, COHORT_ACTIONS[CohortState.MATCHING])
    return actions


def state_after_round(current: CohortState) -> CohortState | None:
    """A completed round is a fact: it moves a cohort that is not matching yet to matching.

    Normally from closed. From open only when a reopening crossed a round in flight (the
    matching service checked its copy of the state, which said closed, a moment before the
    reopening reached it): the round happened, so the cohort is matching; applications
    submitted in that moment wait for the next round. None: no change."""
    if current in (CohortState.CLOSED, CohortState.OPEN, CohortState.DRAFT):
        return CohortState.MATCHING
    return None


POSITION_PUBLISHING = (CohortState.DRAFT, CohortState.OPEN)


def check_can_publish_positions(cohort: Doc) -> None:
    state = cohort_state(cohort)
    if state not in POSITION_PUBLISHING:
        raise conflict(
            f"cohort {cohort['_id']!r} is {state.value}: positions can be published while it "
            "is a draft or open",
            field="cohort_id",
            extra={
                "current_state": state.value,
                "allowed": [s.value for s in COHORT.allowed(state)],
            },
        )


def check_can_edit_position(position: Doc, cohort: Doc, cohort_id: str) -> None:
    """An open position may change while its cohort takes positions (no round has seen it);
    it stays in its cohort."""
    if cohort_id != position["cohort_id"]:
        raise DomainError(
            f"a position stays in its cohort ({position['cohort_id']!r}); publish a new "
            "position for another cohort",
            field="cohort_id",
        )
    if position["state"] != "open":
        raise conflict(
            f"position {position['_id']!r} is closed and can no longer be changed",
            extra={"current_state": position["state"], "allowed": []},
        )
    state = cohort_state(cohort)
    if state not in POSITION_PUBLISHING:
        raise conflict(
            f"cohort {cohort['_id']!r} is {state.value}: a position can be changed while its "
            "cohort is a draft or open, before any round",
            field="cohort_id",
            extra={
                "current_state": state.value,
                "allowed": [s.value for s in COHORT.allowed(state)],
            },
        )


# -- company -----------------------------------------------------------------------------

COMPANY = StateMachine(
    "company",
    {
        CompanyStatus.PENDING: (CompanyStatus.APPROVED, CompanyStatus.REJECTED),
        CompanyStatus.APPROVED: (CompanyStatus.SUSPENDED, CompanyStatus.REJECTED),
        CompanyStatus.SUSPENDED: (CompanyStatus.APPROVED, CompanyStatus.REJECTED),
        # A rejection can be reconsidered; the company then publishes its positions anew.
        CompanyStatus.REJECTED: (CompanyStatus.APPROVED,),
    },
)

COMPANY_ACTIONS = {
    CompanyStatus.APPROVED: "approve",
    CompanyStatus.REJECTED: "reject",
    CompanyStatus.SUSPENDED: "suspend",
}

# Rejecting or suspending a company closes its open positions, with this reason.
POSITION_CLOSE_REASON = {
    CompanyStatus.REJECTED: PositionClosedReason.COMPANY_REJECTED,
    CompanyStatus.SUSPENDED: PositionClosedReason.COMPANY_SUSPENDED,
}


# A registration holds its contact's address until it is rejected: no second company may use
# the address meanwhile (one address, one person), and a rejected impostor frees it.
ADDRESS_HOLDING = frozenset(
    {CompanyStatus.PENDING, CompanyStatus.APPROVED, CompanyStatus.SUSPENDED}
)


def holds_address(status: CompanyStatus) -> bool:
    return status in ADDRESS_HOLDING


def company_actions(status: CompanyStatus) -> list[str]:
    return [COMPANY_ACTIONS[s] for s in COMPANY.allowed(status)]


# -- application -------------------------------------------------------------------------


class ApplicationState(StrEnum):
    SUBMITTED = "submitted"
    PROPOSED = "proposed"  # a proposal is pending (one side may have accepted)
    PLACED = "placed"  # both sides accepted: a confirmed placement
    NOT_MATCHED = "not_matched"  # the last round left it without a proposal
    DECLINED = "declined"  # the last proposal was declined (by either side)
    EXPIRED = "expired"  # the last proposal lapsed unanswered
    CANCELLED = "cancelled"  # the last proposal or placement was cancelled
    WITHDRAWN = "withdrawn"  # by the student (or with their consent, or erasure)


_S = ApplicationState
# Declined, expired, cancelled and not_matched are not final: the student stays in the market
# with their other choices, so a later round may propose them again.
_IN_MARKET = (_S.PROPOSED, _S.NOT_MATCHED, _S.WITHDRAWN)
APPLICATION = StateMachine(
    "application",
    {
        _S.SUBMITTED: (_S.PROPOSED, _S.NOT_MATCHED, _S.WITHDRAWN),
        _S.PROPOSED: (_S.PLACED, _S.DECLINED, _S.EXPIRED, _S.CANCELLED, _S.WITHDRAWN),
        _S.NOT_MATCHED: (_S.PROPOSED, _S.WITHDRAWN),
        _S.DECLINED: _IN_MARKET,
        _S.EXPIRED: _IN_MARKET,
        _S.CANCELLED: _IN_MARKET,
        # A confirmed placement is never silently undone: only the coordinator cancels it.
        _S.PLACED: (_S.CANCELLED,),
        _S.WITHDRAWN: (),
    },
)


class ProposalProgress(StrEnum):
    """What the applications service knows of one proposal, from matching's events."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"  # by one side
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PLACEMENT_CANCELLED = "placement_cancelled"


_P = ProposalProgress
# How far along each step is: an event never moves a proposal back (a late match-proposed
# after its match-declined changes nothing).
PROGRESS_RANK = {
    _P.PROPOSED: 0,
    _P.ACCEPTED: 1,
    _P.CONFIRMED: 2,
    _P.DECLINED: 2,
    _P.EXPIRED: 2,
    _P.CANCELLED: 2,
    _P.PLACEMENT_CANCELLED: 3,
}
STATE_OF_PROGRESS = {
    _P.PROPOSED: _S.PROPOSED,
    _P.ACCEPTED: _S.PROPOSED,
    _P.CONFIRMED: _S.PLACED,
    _P.DECLINED: _S.DECLINED,
    _P.EXPIRED: _S.EXPIRED,
    _P.CANCELLED: _S.CANCELLED,
    _P.PLACEMENT_CANCELLED: _S.CANCELLED,
}


def merge_proposal(known: Doc | None, fact: Doc) -> Doc:
    """Fold one event's facts about a proposal into what is known about it.

    `fact` has `status` (a ProposalProgress value), `seen_at` (the event's moment) and any
    of proposal_id, position_id, round_id, proposed_at, respond_by, placement_id,
    student_answer, company_answer, reason. The status only moves forward; `seen_at` keeps
    the earliest moment (it orders proposals whose match-proposed has not arrived yet)."""
    merged = dict(known or {})
    for key, value in fact.items():
        if value is None or key == "status":
            continue
        if key == "seen_at":
            merged[key] = min(merged.get(key, value), value)
        else:
            merged[key] = value
    new = ProposalProgress(fact["status"])
    old = merged.get("status")
    if old is None or PROGRESS_RANK[new] > PROGRESS_RANK[ProposalProgress(old)]:
        merged["status"] = new.value
    return merged


def _moment(proposal: Doc) -> datetime:
    return proposal.get("proposed_at") or proposal["seen_at"]  # type: ignore[no-any-return]


def latest_proposal(proposals: Iterable[Doc]) -> Doc | None:
    return max(proposals, key=_moment, default=None)


def derive_state(
    withdrawn: bool, proposals: Iterable[Doc], not_matched_at: Iterable[datetime]
) -> ApplicationState:
    """The one truthful status of an application, from every fact known about it."""
    if withdrawn:
        return ApplicationState.WITHDRAWN
    latest = latest_proposal(proposals)
    last_unmatched = max(not_matched_at, default=None)
    if latest is None:
        return ApplicationState.NOT_MATCHED if last_unmatched else ApplicationState.SUBMITTED
    # A student holding a proposal is not in the next round, so a round that left them
    # unmatched ran after their latest proposal ended.
    if last_unmatched is not None and last_unmatched > _moment(latest):
        return ApplicationState.NOT_MATCHED
    return STATE_OF_PROGRESS[ProposalProgress(latest["status"])]


def application_view(application: Doc) -> Doc:
    """The derived state and what a page needs about the current proposal."""
    proposals = list((application.get("proposals") or {}).values())
    state = derive_state(
        application.get("withdrawn_at") is not None,
        proposals,
        [m["at"] for m in application.get("not_matched") or []],
    )
    latest = latest_proposal(proposals)
    view: Doc = {
        "state": state.value,
        "proposal": latest,
        "proposal_id": None,
        "respond_by": None,
        "placement_id": None,
    }
    if latest is not None and state is ApplicationState.PROPOSED:
        view["proposal_id"] = latest.get("proposal_id")
        view["respond_by"] = latest.get("respond_by")
    if latest is not None and state is ApplicationState.PLACED:
        view["proposal_id"] = latest.get("proposal_id")
        view["placement_id"] = latest.get("placement_id")
    return view


def student_actions(application: Doc, window_open: bool) -> list[str]:
    """What the student may do with this application now."""
    state = ApplicationState(application["state"])
    actions = []
    if state is ApplicationState.SUBMITTED and window_open:
        actions.append("edit")
    if state is ApplicationState.PROPOSED:
        proposal = application.get("proposal") or {}
        if proposal.get("student_answer") is None:
            actions += ["accept_proposal", "decline_proposal"]
    if APPLICATION.can(state, ApplicationState.WITHDRAWN):
        actions.append("withdraw")
    return actions


def check_withdrawable(application: Doc) -> None:
    """A student may withdraw at any time before a placement is confirmed; after it, only
    the coordinator can cancel the placement."""
    state = ApplicationState(application["state"])
    if state is ApplicationState.PLACED:
        raise conflict(
            f"application {application['_id']!r} has a confirmed placement and can no longer "
            "be withdrawn; please ask the program coordinator, who can cancel the placement",
            extra={"current_state": state.value, "allowed": []},
        )
    APPLICATION.check(state, ApplicationState.WITHDRAWN, ident=application["_id"])


def check_editable(application: Doc) -> None:
    state = ApplicationState(application["state"])
    if state is not ApplicationState.SUBMITTED:
        raise conflict(
            f"application {application['_id']!r} is {state.value}; only a submitted "
            "application can be edited (while the window is open)",
            extra={
                "current_state": state.value,
                "allowed": [s.value for s in APPLICATION.allowed(state)],
            },
        )


def is_active(application: Doc) -> bool:
    """Counts as the student's application in its cohort (one at a time)."""
    return ApplicationState(application["state"]) is not ApplicationState.WITHDRAWN


def withdrawn_by_consent(applications: Iterable[Doc]) -> list[Doc]:
    """Consent withdrawn: every application that can still be withdrawn is. A confirmed
    placement stays (only the coordinator cancels it)."""
    return [
        a
        for a in applications
        if APPLICATION.can(ApplicationState(a["state"]), ApplicationState.WITHDRAWN)
    ]


def check_erasable(applications: Iterable[Doc], student_id: str) -> None:
    placed = [a["_id"] for a in applications if a["state"] == ApplicationState.PLACED]
    if placed:
        raise conflict(
            f"student {student_id!r} has a confirmed placement ({', '.join(placed)}); the "
            "program coordinator must cancel it before the profile can be erased",
            extra={"current_state": ApplicationState.PLACED.value, "allowed": []},
        )
