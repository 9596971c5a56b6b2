"""Lifecycles the matching service owns (pure, no I/O): proposal and placement, and the
cohort states in which a round may run.

Proposal: proposed -> accepted (by one side) -> confirmed, or declined / expired / cancelled
from either pending state. Placement: confirmed -> cancelled, by the coordinator with a
reason (the platform does it only when a withdrawal or erasure the applications service had
already accepted crossed the confirmation in flight).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import conflict
from shared.events.vocabulary import (
    COHORT_TRANSITIONS,
    CohortState,
    MatchCancelReason,
    Party,
    PlacementCancelReason,
    PositionClosedReason,
)
from shared.states import StateMachine

Doc = dict[str, Any]


class ProposalStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"  # one side accepted; the other has not answered yet
    CONFIRMED = "confirmed"  # both accepted: a placement exists
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # its ground went away (see MatchCancelReason)


_P = ProposalStatus
_ENDINGS = (_P.DECLINED, _P.EXPIRED, _P.CANCELLED)
PROPOSAL = StateMachine(
    "proposal",
    {
        _P.PROPOSED: (_P.ACCEPTED, *_ENDINGS),
        _P.ACCEPTED: (_P.CONFIRMED, *_ENDINGS),
        _P.CONFIRMED: (),
        _P.DECLINED: (),
        _P.EXPIRED: (),
        _P.CANCELLED: (),
    },
)
# Waiting for answers: can be answered, expire or be cancelled.
PENDING = (_P.PROPOSED, _P.ACCEPTED)


class PlacementStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


PLACEMENT = StateMachine(
    "placement",
    {PlacementStatus.CONFIRMED: (PlacementStatus.CANCELLED,), PlacementStatus.CANCELLED: ()},
)

COHORT = StateMachine("cohort", COHORT_TRANSITIONS)
# A round needs a closed application window; a finished cohort takes no more rounds.
ROUND_STATES = (CohortState.CLOSED, CohortState.MATCHING)


def check_round_allowed(cohort_id: str, state: CohortState) -> None:
    """409 unless a round may run; the body names the state and where the cohort can go."""
    if state in ROUND_STATES:
        return
    how = {
        CohortState.DRAFT: "open its application window, then close it",
        CohortState.OPEN: "close its application window first",
        CohortState.FINISHED: "it is finished and takes no further rounds",
    }[state]
    raise conflict(
        f"cohort {cohort_id!r} is {state.value}: a round needs a closed application window; {how}",
        field="cohort_id",
        extra={
            "current_state": state.value,
            "allowed": [s.value for s in COHORT.allowed(state)],
        },
    )


def answer(proposal: Doc, party: Party, accept: bool, at: datetime) -> tuple[ProposalStatus, bool]:
    """The proposal's next status after this party's answer, and whether it confirms the
    placement. Raises 409 (with the current and allowed states) when it cannot be answered."""
    ident = proposal["_id"]
    current = ProposalStatus(proposal["status"])
    if current not in PENDING:
        raise conflict(
            f"proposal {ident!r} is already {current.value} and can no longer be answered",
            extra={
                "current_state": current.value,
                "allowed": [s.value for s in PROPOSAL.allowed(current)],
            },
        )
    answered = proposal.get(f"{party.value}_answer")
    if answered is not None:
        raise conflict(
            f"the {party.value} has already answered ({answered})",
            extra={
                "current_state": current.value,
                "allowed": [s.value for s in PROPOSAL.allowed(current)],
            },
        )
    if at > proposal["respond_by"]:
        raise conflict(
            f"the deadline to answer passed at {proposal['respond_by']:%Y-%m-%d %H:%M} UTC",
            field="respond_by",
            extra={"current_state": current.value, "allowed": [_P.EXPIRED.value]},
        )
    if not accept:
        target = _P.DECLINED
    else:
        other = Party.COMPANY if party is Party.STUDENT else Party.STUDENT
        target = (
            _P.CONFIRMED if proposal.get(f"{other.value}_answer") == "accepted" else _P.ACCEPTED
        )
    PROPOSAL.check(current, target, ident=ident)
    return target, target is _P.CONFIRMED


def party_actions(proposal: Doc, party: Party | None, now: datetime) -> list[str]:
    """What this party may do with the proposal now (none for the coordinator's view except
    cancelling a pending one)."""
    pending = ProposalStatus(proposal["status"]) in PENDING
    if party is None:
        return ["cancel"] if pending else []
    if pending and proposal.get(f"{party.value}_answer") is None and now <= proposal["respond_by"]:
        return ["accept", "decline"]
    return []


# Why a pending proposal is cancelled, from what removed its ground.
WITHDRAWAL_CANCELS = {
    "withdrawn": MatchCancelReason.APPLICATION_WITHDRAWN,
    "replaced": MatchCancelReason.APPLICATION_WITHDRAWN,
    "erased": MatchCancelReason.STUDENT_ERASED,
    "consent_withdrawn": MatchCancelReason.CONSENT_WITHDRAWN,
}
WITHDRAWAL_CANCELS_PLACEMENT = {
    "withdrawn": PlacementCancelReason.APPLICATION_WITHDRAWN,
    "replaced": PlacementCancelReason.APPLICATION_WITHDRAWN,
    "erased": PlacementCancelReason.STUDENT_ERASED,
    "consent_withdrawn": PlacementCancelReason.CONSENT_WITHDRAWN,
}
POSITION_CLOSE_CANCELS = {
    PositionClosedReason.CLOSED: MatchCancelReason.POSITION_CLOSED,
    PositionClosedReason.COMPANY_REJECTED: MatchCancelReason.COMPANY_REJECTED,
    PositionClosedReason.COMPANY_SUSPENDED: MatchCancelReason.COMPANY_SUSPENDED,
}


POSITION_CLOSE_CANCELS_PLACEMENT = {
    PositionClosedReason.CLOSED: PlacementCancelReason.POSITION_CLOSED,
    PositionClosedReason.COMPANY_REJECTED: PlacementCancelReason.COMPANY_REJECTED,
    PositionClosedReason.COMPANY_SUSPENDED: PlacementCancelReason.COMPANY_SUSPENDED,
}


def cancel_reason_for_withdrawal(reason: str) -> MatchCancelReason:
    return WITHDRAWAL_CANCELS.get(reason, MatchCancelReason.APPLICATION_WITHDRAWN)


def placement_reason_for_withdrawal(reason: str) -> PlacementCancelReason:
    return WITHDRAWAL_CANCELS_PLACEMENT.get(reason, PlacementCancelReason.APPLICATION_WITHDRAWN)


def cancel_reason_for_closing(reason: PositionClosedReason | None) -> MatchCancelReason:
    return POSITION_CLOSE_CANCELS[reason or PositionClosedReason.CLOSED]


def placement_reason_for_closing(reason: PositionClosedReason | None) -> PlacementCancelReason:
    return POSITION_CLOSE_CANCELS_PLACEMENT[reason or PositionClosedReason.CLOSED]


def confirmed_after_closing(placement: Doc, closed_at: datetime) -> bool:
    """A placement confirmed after its position closed was confirmed on ground already gone
    (an answer crossed the closing in flight): it is cancelled. One confirmed before stands;
    closing a position never undoes a placement."""
    return bool(
        placement.get("status", PlacementStatus.CONFIRMED) == PlacementStatus.CONFIRMED
        and placement["confirmed_at"] > closed_at
    )


def holds_seat(proposal: Doc) -> bool:
    """A pending proposal or a confirmed placement that was not cancelled holds its seat
    (and keeps the student out of later rounds)."""
    status = ProposalStatus(proposal["status"])
    if status in PENDING:
        return True
    return status is _P.CONFIRMED and proposal.get("placement_status") != PlacementStatus.CANCELLED
