"""HTTP API of the matching service."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.matching.store import MatchingStore, pair_docs, replay
from shared.auth import Principal, Role, require
from shared.bounds import MAX_RESPOND_WITHIN_HOURS, CohortId, Id, Seed
from shared.documents import to_response
from shared.errors import not_found
from shared.events.vocabulary import Party
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

SUMMARY_HIDE = ("input", "pairs", "exclusions", "unmatched_student_ids", "proposal_ids")


@rounds.post("", status_code=status.HTTP_201_CREATED, summary="Run a match round for a cohort")
async def start_round(
    body: RoundIn, _: Coordinator, store: Store, request: Request
) -> dict[str, Any]:
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    hours = body.respond_within_hours or request.app.state.settings.respond_within_hours
    doc = await in_transaction(
        store.db.client,
        lambda s: store.start_round(s, body.cohort_id, seed, timedelta(hours=hours)),
    )
    return to_response(doc, hide=("input",))


@rounds.get("")
async def list_rounds(
    _: Coordinator, store: Store, cohort_id: CohortId | None = None
) -> list[dict[str, Any]]:
    query = {"cohort_id": cohort_id} if cohort_id else {}
    docs = await store.rounds.find(query).sort([("cohort_id", 1), ("number", 1)]).to_list()
    return [to_response(d, hide=SUMMARY_HIDE) for d in docs]


@rounds.get("/{round_id}", summary="A round's result, certificate and statistics")
async def get_round(round_id: Id, _: Coordinator, store: Store) -> dict[str, Any]:
    return to_response(await store.get_round(round_id), hide=("input", "exclusions"))


@rounds.get("/{round_id}/exclusions", summary="Pairs left out before matching, with reasons")
async def list_exclusions(
    round_id: Id,
    _: Coordinator,
    store: Store,
    reason: Annotated[str | None, Query(max_length=100)] = None,
) -> list[dict[str, Any]]:
    exclusions = (await store.get_round(round_id))["exclusions"]
    return [e for e in exclusions if reason is None or e["reason"] == reason]


@rounds.post("/{round_id}/replay", summary="Re-run a round from its stored input and seed")
async def replay_round(round_id: Id, _: Coordinator, store: Store) -> dict[str, Any]:
    doc = await store.get_round(round_id)
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


def view(doc: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """A student sees the position, not the company's id (company ids are not theirs to
    collect); the position's company names are on GET /positions/{id}."""
    hide = ("company_id",) if principal.role is Role.STUDENT else ()
    return to_response(doc, hide=hide)


@proposals.get("")
async def list_proposals(
    principal: Participant,
    store: Store,
    cohort_id: CohortId | None = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(proposed|confirmed|declined|expired)$")
    ] = None,
) -> list[dict[str, Any]]:
    query = visible_query(principal)
    if cohort_id:
        query["cohort_id"] = cohort_id
    if status_:
        query["status"] = status_
    docs = await store.proposals.find(query).sort("proposed_at", 1).to_list()
    return [view(d, principal) for d in docs]


@proposals.get("/{proposal_id}")
async def get_proposal(proposal_id: Id, principal: Participant, store: Store) -> dict[str, Any]:
    doc = await store.get_proposal(proposal_id)
    if any(doc.get(k) != v for k, v in visible_query(principal).items()):
        raise not_found("proposal", proposal_id)
    return view(doc, principal)


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
    return view(doc, principal)


@proposals.post("/{proposal_id}/accept", summary="Accept a proposal (the student or the company)")
async def accept(proposal_id: Id, principal: Answerer, store: Store) -> dict[str, Any]:
    return await answer(proposal_id, principal, store, accept=True)


@proposals.post("/{proposal_id}/decline", summary="Decline a proposal (the student or the company)")
async def decline(proposal_id: Id, principal: Answerer, store: Store) -> dict[str, Any]:
    return await answer(proposal_id, principal, store, accept=False)


placements = APIRouter(prefix="/placements", tags=["placements"])


@placements.get("")
async def list_placements(
    principal: Participant, store: Store, cohort_id: CohortId | None = None
) -> list[dict[str, Any]]:
    query = visible_query(principal)
    if cohort_id:
        query["cohort_id"] = cohort_id
    docs = await store.placements.find(query).sort("confirmed_at", 1).to_list()
    return [view(d, principal) for d in docs]


cohorts = APIRouter(prefix="/cohorts", tags=["statistics"])


@cohorts.get("/{cohort_id}/statistics", summary="Matched, confirmed, declined, expired, by sector")
async def cohort_statistics(cohort_id: CohortId, _: Coordinator, store: Store) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    by_sector: dict[str, dict[str, int]] = {}
    async for p in store.proposals.find({"cohort_id": cohort_id}):
        by_status[p["status"]] = by_status.get(p["status"], 0) + 1
        sector = by_sector.setdefault(p["sector"], {})
        sector[p["status"]] = sector.get(p["status"], 0) + 1
    applicants = await store.applications.count_documents(
        {"cohort_id": cohort_id, "state": "active"}
    )
    placed = by_status.get("confirmed", 0)
    answered = placed + by_status.get("declined", 0)
    return {
        "cohort_id": cohort_id,
        "rounds": await store.rounds.count_documents({"cohort_id": cohort_id}),
        "active_applications": applicants,
        "proposals": by_status,
        "placements": placed,
        "acceptance_rate": round(placed / answered, 4) if answered else None,
        "by_sector": by_sector,
    }


ROUTERS = [rounds, proposals, placements, cohorts]
