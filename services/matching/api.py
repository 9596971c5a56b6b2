"""HTTP API of the matching service."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.matching.domain import lifecycle
from services.matching.domain.lifecycle import PlacementStatus, ProposalStatus
from services.matching.domain.rounds import run_round
from services.matching.store import ROUND_LIST_PARTS, Doc, MatchingStore, pair_docs, replay
from shared.auth import Principal, Role, require
from shared.bounds import MAX_RESPOND_WITHIN_HOURS, CohortId, Id, NoteCode, Seed
from shared.documents import to_response
from shared.errors import DomainError, not_found
from shared.events.vocabulary import (
    EmploymentOutcome,
    MatchCancelReason,
    Party,
    PlacementCancelReason,
)
from shared.mongo import in_transaction

Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
Participant = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.COMPANY, Role.STUDENT))]
Answerer = Annotated[Principal, Depends(require(Role.STUDENT, Role.COMPANY))]


def store_of(request: Request) -> MatchingStore:
    return request.app.state.store  # type: ignore[no-any-return]


Store = Annotated[MatchingStore, Depends(store_of)]


class RoundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort_id: CohortId
    seed: Seed | None = Field(
        default=None,
        strict=True,
        description="Tie-break seed (0 to 2^63-1); a random one is drawn and stored if absent.",
    )
    respond_within_hours: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RESPOND_WITHIN_HOURS,
        allow_inf_nan=False,
        description="Deadline for both sides' answers, at most 90 days (default from settings).",
    )


rounds = APIRouter(prefix="/rounds", tags=["rounds"])
previews = APIRouter(prefix="/round-preview", tags=["rounds"])

SUMMARY_HIDE = ("input", "pairs", "exclusions", "unmatched_student_ids", "proposal_ids", "parts")


@rounds.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Run a match round for a cohort (its application window must be closed; 409 with "
    "the cohort's state otherwise)",
)
async def start_round(
    body: RoundIn, _: Coordinator, store: Store, request: Request
) -> dict[str, Any]:
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    hours = body.respond_within_hours or request.app.state.settings.respond_within_hours
    started, outcome = time.perf_counter(), "failed"
    try:
        doc = await in_transaction(
            store.db.client,
            lambda s: store.start_round(s, body.cohort_id, seed, timedelta(hours=hours)),
        )
        outcome = "completed"
    except DomainError:
        outcome = "refused"  # the cohort cannot have a round now (the 409/422 says why)
        raise
    finally:
        elapsed = time.perf_counter() - started
        request.app.state.round_duration.labels(outcome).observe(elapsed)
    return to_response(doc, hide=("input",))


# Not under /rounds: GET /rounds/{round_id} would also answer /rounds/preview.
@previews.post("", summary="What a round would propose now; nothing is stored or sent")
async def preview_round(body: RoundIn, _: Coordinator, store: Store) -> dict[str, Any]:
    seed = body.seed if body.seed is not None else 0
    async with store.db.client.start_session() as session:
        round_input = await store.round_input(session, body.cohort_id, seed)
    result = run_round(round_input)
    return {
        "cohort_id": body.cohort_id,
        "seed": seed,
        "students": len(round_input.students),
        "positions": len(round_input.positions),
        "seats": result.seats,
        "pairs": pair_docs(result),
        "unmatched_student_ids": list(result.unmatched_student_ids),
        "exclusions": [
            {
                "student_id": e.student_id,
                "position_id": e.position_id,
                "reason": e.reason.value,
                "detail": e.detail,
            }
            for e in result.exclusions
        ],
        "stable": result.certificate.stable,
    }


@rounds.get("")
async def list_rounds(
    _: Coordinator, store: Store, cohort_id: CohortId | None = None
) -> list[dict[str, Any]]:
    query = {"cohort_id": cohort_id} if cohort_id else {}
    # Summaries only (a round's input and lists are in round_parts; older rounds' are hidden).
    docs = (
        await store.rounds.find(query, {k: 0 for k in SUMMARY_HIDE})
        .sort([("cohort_id", 1), ("number", 1)])
        .to_list()
    )
    return [to_response(d, hide=SUMMARY_HIDE) for d in docs]


@rounds.get("/{round_id}", summary="A round's result, certificate and statistics")
async def get_round(round_id: Id, _: Coordinator, store: Store) -> dict[str, Any]:
    doc = await store.get_round(round_id, ("pairs", "proposal_ids", "unmatched_student_ids"))
    return to_response(doc, hide=("input", "exclusions"))


@rounds.get("/{round_id}/exclusions", summary="Pairs left out before matching, with reasons")
async def list_exclusions(
    round_id: Id,
    _: Coordinator,
    store: Store,
    reason: Annotated[str | None, Query(max_length=100)] = None,
) -> list[dict[str, Any]]:
    exclusions = (await store.get_round(round_id, ("exclusions",)))["exclusions"]
    return [e for e in exclusions if reason is None or e["reason"] == reason]


@rounds.post("/{round_id}/replay", summary="Re-run a round from its stored input and seed")
async def replay_round(round_id: Id, _: Coordinator, store: Store) -> dict[str, Any]:
    doc = await store.get_round(round_id, ("input", *ROUND_LIST_PARTS))
    round_input, result = replay(doc)
    return {
        "round_id": round_id,
        "input_hash_matches": round_input.snapshot_hash() == doc["input_hash"],
        "algorithm_version": result.algorithm_version,
        "stored_algorithm_version": doc["algorithm_version"],
        "identical": pair_docs(result) == doc["pairs"]
        and list(result.unmatched_student_ids) == doc["unmatched_student_ids"],
        "stable": result.certificate.stable,
    }


proposals = APIRouter(prefix="/proposals", tags=["proposals"])


def visible_query(principal: Principal) -> dict[str, Any]:
    """What the caller may see: its own as a student or company, everything as coordinator."""
    if principal.role is Role.STUDENT:
        return {"student_id": principal.sub}
    if principal.role is Role.COMPANY:
        return {"company_id": principal.sub}
    if principal.is_coordinator:
        return {}
    raise AssertionError(f"no visibility rule for role {principal.role}")  # Participant only


def party_of(principal: Principal) -> Party | None:
    return {Role.STUDENT: Party.STUDENT, Role.COMPANY: Party.COMPANY}.get(principal.role)


def proposal_response(doc: Doc, principal: Principal) -> dict[str, Any]:
    """A proposal with what this reader may do with it now (accept/decline for a party
    that has not answered before the deadline; cancel for the coordinator)."""
    party = party_of(principal)
    actions = (
        lifecycle.party_actions(doc, party, datetime.now(UTC))
        if party is not None or principal.is_coordinator
        else []
    )
    return {**to_response(doc), "allowed_actions": actions}


PROPOSAL_STATES = "^(" + "|".join(s.value for s in ProposalStatus) + ")$"


@proposals.get("")
async def list_proposals(
    principal: Participant,
    store: Store,
    cohort_id: CohortId | None = None,
    status_: Annotated[str | None, Query(alias="status", pattern=PROPOSAL_STATES)] = None,
) -> list[dict[str, Any]]:
    query = visible_query(principal)
    if cohort_id:
        query["cohort_id"] = cohort_id
    if status_:
        query["status"] = status_
    docs = await store.proposals.find(query).sort("proposed_at", 1).to_list()
    return [proposal_response(d, principal) for d in docs]


@proposals.get("/{proposal_id}")
async def get_proposal(proposal_id: Id, principal: Participant, store: Store) -> dict[str, Any]:
    doc = await store.get_proposal(proposal_id)
    if any(doc.get(k) != v for k, v in visible_query(principal).items()):
        raise not_found("proposal", proposal_id)
    return proposal_response(doc, principal)


async def answer(
    proposal_id: str, principal: Principal, store: MatchingStore, accept: bool
) -> dict[str, Any]:
    proposal = await store.get_proposal(proposal_id)
    party = Party.STUDENT if principal.role is Role.STUDENT else Party.COMPANY
    if proposal[f"{party.value}_id"] != principal.sub:
        raise not_found("proposal", proposal_id)  # not addressed to the caller
    at = datetime.now(UTC)
    doc = await in_transaction(
        store.db.client, lambda s: store.answer(s, proposal_id, party, accept, at)
    )
    return proposal_response(doc, principal)


@proposals.post("/{proposal_id}/accept", summary="Accept a proposal (the student or the company)")
async def accept(proposal_id: Id, principal: Answerer, store: Store) -> dict[str, Any]:
    return await answer(proposal_id, principal, store, accept=True)


@proposals.post("/{proposal_id}/decline", summary="Decline a proposal (the student or the company)")
async def decline(proposal_id: Id, principal: Answerer, store: Store) -> dict[str, Any]:
    return await answer(proposal_id, principal, store, accept=False)


@proposals.post(
    "/{proposal_id}/cancel",
    summary="Cancel a pending proposal (coordinator): the seat is free, both sides are told",
)
async def cancel_proposal(proposal_id: Id, principal: Coordinator, store: Store) -> dict[str, Any]:
    at = datetime.now(UTC)
    doc = await in_transaction(
        store.db.client,
        lambda s: store.cancel_proposal(s, proposal_id, MatchCancelReason.COORDINATOR, at),
    )
    return proposal_response(doc, principal)


placements = APIRouter(prefix="/placements", tags=["placements"])


def placement_response(doc: Doc, principal: Principal) -> dict[str, Any]:
    state = PlacementStatus(doc.get("status", PlacementStatus.CONFIRMED.value))
    return {
        **to_response(doc),
        "status": state.value,
        "allowed_actions": lifecycle.placement_actions(state) if principal.is_coordinator else [],
    }


@placements.get("")
async def list_placements(
    principal: Participant, store: Store, cohort_id: CohortId | None = None
) -> list[dict[str, Any]]:
    query = visible_query(principal)
    if cohort_id:
        query["cohort_id"] = cohort_id
    docs = await store.placements.find(query).sort("confirmed_at", 1).to_list()
    return [placement_response(d, principal) for d in docs]


@placements.get("/{placement_id}")
async def get_placement(placement_id: Id, principal: Participant, store: Store) -> dict[str, Any]:
    doc = await store.get_placement(placement_id)
    if any(doc.get(k) != v for k, v in visible_query(principal).items()):
        raise not_found("placement", placement_id)
    return placement_response(doc, principal)


class PlacementCancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: PlacementCancelReason = Field(
        description="Why; one of the coordinator's reasons (student_withdrew, "
        "company_withdrew, program_decision, other)."
    )
    note_code: NoteCode | None = Field(
        default=None,
        description="A reference into the city's own case file (a code, not free text: the "
        "event is public and must carry no personal data).",
        examples=["KK-2026-014"],
    )


COORDINATOR_REASONS = (
    PlacementCancelReason.STUDENT_WITHDREW,
    PlacementCancelReason.COMPANY_WITHDREW,
    PlacementCancelReason.PROGRAM_DECISION,
    PlacementCancelReason.OTHER,
)


@placements.post(
    "/{placement_id}/cancel",
    summary="Cancel a confirmed placement (coordinator, with a reason): the seat is free and "
    "both sides are told",
)
async def cancel_placement(
    placement_id: Id, body: PlacementCancelIn, principal: Coordinator, store: Store
) -> dict[str, Any]:
    if body.reason not in COORDINATOR_REASONS:
        allowed = ", ".join(r.value for r in COORDINATOR_REASONS)
        raise DomainError(f"choose one of: {allowed}", field="reason")
    at = datetime.now(UTC)
    doc = await in_transaction(
        store.db.client,
        lambda s: store.cancel_placement(s, placement_id, body.reason, body.note_code, at),
    )
    return placement_response(doc, principal)


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    completed_on: date | None = Field(
        default=None,
        description="The internship's last day (default: the position's end date); between "
        "its start and today.",
    )


@placements.post(
    "/{placement_id}/complete",
    summary="Record that a confirmed placement's internship was completed (coordinator)",
)
async def complete_placement(
    placement_id: Id, principal: Coordinator, store: Store, body: CompletionIn | None = None
) -> dict[str, Any]:
    at = datetime.now(UTC)
    last_day = body.completed_on if body is not None else None
    doc = await in_transaction(
        store.db.client,
        lambda s: store.complete_placement(s, placement_id, last_day, at),
    )
    return placement_response(doc, principal)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: EmploymentOutcome = Field(
        description="hired_by_host, hired_in_kitakyushu (another employer in the city), "
        "hired_elsewhere_in_japan, returned_to_studies or unknown."
    )
    note_code: NoteCode | None = Field(
        default=None,
        description="A reference into the city's own case file (a code, not free text: the "
        "event is public).",
        examples=["KK-2027-003"],
    )


@placements.post(
    "/{placement_id}/outcome",
    summary="Record (or update) the intern's outcome after a completed internship "
    "(coordinator); the latest one stands",
)
async def record_outcome(
    placement_id: Id, body: OutcomeIn, principal: Coordinator, store: Store
) -> dict[str, Any]:
    at = datetime.now(UTC)
    doc = await in_transaction(
        store.db.client,
        lambda s: store.record_outcome(s, placement_id, body.outcome, body.note_code, at),
    )
    return placement_response(doc, principal)


ROUTERS = [rounds, previews, proposals, placements]
