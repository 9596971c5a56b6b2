"""The matching service's MongoDB database: read model, rounds, proposals, placements.

Writes that change state put their events in the outbox in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.matching.domain.residence import residence_status
from services.matching.domain.rounds import RoundResult, run_round
from services.matching.domain.rules import PositionInput, Reason, RoundInput, StudentInput
from shared.documents import find_or_404, utcnow
from shared.errors import DomainError, conflict
from shared.events import (
    MatchAccepted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementConfirmed,
    RoundCompleted,
)
from shared.events.catalog import SectorCount
from shared.events.vocabulary import Party
from shared.ids import new_id
from shared.mongo import Session
from shared.outbox import Outbox

Doc = dict[str, Any]

# Proposals in these states hold a seat (and keep the student out of later rounds).
HOLDING = ("proposed", "confirmed")


class MatchingStore:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox
        self.positions = db["positions"]
        self.applications = db["applications"]
        self.rankings = db["rankings"]
        self.rounds = db["rounds"]
        self.proposals = db["proposals"]
        self.placements = db["placements"]
        self.locks = db["cohort_locks"]

    async def ensure_indexes(self) -> None:
        await self.positions.create_index([("cohort_id", ASCENDING), ("state", ASCENDING)])
        await self.applications.create_index([("cohort_id", ASCENDING), ("state", ASCENDING)])
        await self.proposals.create_index([("cohort_id", ASCENDING), ("status", ASCENDING)])
        await self.proposals.create_index([("status", ASCENDING), ("respond_by", ASCENDING)])
        await self.proposals.create_index("student_id")
        await self.proposals.create_index("company_id")
        await self.rounds.create_index([("cohort_id", ASCENDING), ("number", ASCENDING)])

    # rounds --------------------------------------------------------------------------------

    async def round_input(self, session: Session, cohort_id: str, seed: int) -> RoundInput:
        """The residual market of a cohort: free seats, students not yet holding a proposal
        or a placement, and the pairs earlier answers ruled out."""
        proposals = await self.proposals.find({"cohort_id": cohort_id}, session=session).to_list()
        holding = [p for p in proposals if p["status"] in HOLDING]
        taken: dict[str, int] = {}
        for p in holding:
            taken[p["position_id"]] = taken.get(p["position_id"], 0) + 1
        busy_students = {p["student_id"] for p in holding}
        excluded = {
            (p["student_id"], p["position_id"]): (
                Reason.PREVIOUSLY_DECLINED
                if p["status"] == "declined"
                else Reason.PREVIOUSLY_EXPIRED
            )
            for p in proposals
            if p["status"] in ("declined", "expired")
        }
        rankings = {
            r["_id"]: tuple(r["ranked_student_ids"])
            for r in await self.rankings.find({"cohort_id": cohort_id}, session=session).to_list()
        }
        positions = []
        for p in await self.positions.find(
            {"cohort_id": cohort_id, "state": "open", "capacity": {"$exists": True}},
            session=session,
        ).to_list():
            positions.append(
                PositionInput(
                    id=p["_id"],
                    company_id=p["company_id"],
                    sector=p["sector"],
                    seats=p["capacity"] - taken.get(p["_id"], 0),
                    required_skills=tuple(p.get("required_skills", [])),
                    min_jlpt=p.get("min_jlpt"),
                    min_english=p.get("min_english"),
                    paid=p["paid"],
                    start_date=date.fromisoformat(p["start_date"]),
                    end_date=date.fromisoformat(p["end_date"]),
                    ranking=rankings.get(p["_id"]),
                )
            )
        students = []
        for a in await self.applications.find(
            {"cohort_id": cohort_id, "state": "active", "ranked_position_ids": {"$exists": True}},
            session=session,
        ).to_list():
            if a["student_id"] in busy_students:
                continue
            students.append(
                StudentInput(
                    id=a["student_id"],
                    application_id=a["_id"],
                    ranked_position_ids=tuple(a["ranked_position_ids"]),
                    department=a.get("department", ""),
                    jlpt_level=a.get("jlpt_level"),
                    english_level=a.get("english_level"),
                    skills=tuple(a.get("skills", [])),
                    available_from=date.fromisoformat(a["available_from"]),
                    available_to=date.fromisoformat(a["available_to"]),
                    consent_to_data_use=a["consent_to_data_use"],
                )
            )
        return RoundInput(
            cohort_id=cohort_id,
            seed=seed,
            students=tuple(students),
            positions=tuple(positions),
            excluded_pairs=excluded,
        )

    async def start_round(
        self, session: Session, cohort_id: str, seed: int, respond_within: timedelta
    ) -> Doc:
        # Serialises rounds of one cohort: a concurrent round conflicts here and is retried
        # by the transaction, then sees the first round's proposals.
        lock = await self.locks.find_one_and_update(
            {"_id": cohort_id},
            {"$inc": {"rounds": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert lock is not None  # upsert with ReturnDocument.AFTER always returns it
        number = int(lock["rounds"])
        round_input = await self.round_input(session, cohort_id, seed)
        if not round_input.positions and not round_input.students:
            raise DomainError(
                f"cohort {cohort_id!r} has no open positions or applications to match",
                field="cohort_id",
            )
        result = run_round(round_input)
        if not result.certificate.valid:
            # Never publish a matching that fails its own certificate.
            raise RuntimeError(f"round certificate failed: {result.certificate}")
        started = utcnow()
        respond_by = started + respond_within
        round_id = f"round-{cohort_id}-{number}"
        positions = {
            p["_id"]: p
            for p in await self.positions.find(
                {"_id": {"$in": [p.id for p in round_input.positions]}}, session=session
            ).to_list()
        }
        sector_of = {pid: p["sector"] for pid, p in positions.items()}
        seats_of = {p.id: max(0, p.seats) for p in round_input.positions}
        by_sector = result.by_sector(sector_of, seats_of)

        proposals = []
        for pair in result.pairs:
            position = positions[pair.position_id]
            status = residence_status(
                position["paid"],
                date.fromisoformat(position["start_date"]),
                date.fromisoformat(position["end_date"]),
            )
            proposal = {
                "_id": new_id("prop"),
                "round_id": round_id,
                "cohort_id": cohort_id,
                "student_id": pair.student_id,
                "application_id": pair.application_id,
                "position_id": pair.position_id,
                "company_id": position["company_id"],
                "sector": position["sector"],
                "student_rank": pair.student_rank,
                "fit_score": pair.fit_score,
                "residence_status": status.value,
                "respond_by": respond_by,
                "proposed_at": started,
                "status": "proposed",
                "student_answer": None,
                "company_answer": None,
            }
            proposals.append(proposal)
        round_doc = {
            "_id": round_id,
            "cohort_id": cohort_id,
            "number": number,
            "seed": seed,
            "algorithm_version": result.algorithm_version,
            "input_hash": result.input_hash,
            "input": round_input.canonical(),
            "pairs": pair_docs(result),
            "proposal_ids": [p["_id"] for p in proposals],
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
            "certificate": certificate_doc(result),
            "statistics": {
                "students": len(round_input.students),
                "seats": result.seats,
                "proposed": len(result.pairs),
                "unmatched": len(result.unmatched_student_ids),
                "excluded_pairs": len(result.exclusions),
                "by_sector": by_sector,
            },
            "respond_by": respond_by,
            "completed_at": started,
        }
        await self.rounds.insert_one(round_doc, session=session)
        if proposals:
            await self.proposals.insert_many(proposals, session=session)
        for proposal in proposals:
            await self.outbox.add(
                session,
                MatchProposed(
                    proposal_id=proposal["_id"],
                    round_id=round_id,
                    cohort_id=cohort_id,
                    student_id=proposal["student_id"],
                    position_id=proposal["position_id"],
                    company_id=proposal["company_id"],
                    sector=proposal["sector"],
                    student_rank=proposal["student_rank"],
                    residence_status=proposal["residence_status"],
                    respond_by=respond_by,
                    proposed_at=started,
                ),
            )
        await self.outbox.add(
            session,
            RoundCompleted(
                round_id=round_id,
                cohort_id=cohort_id,
                round_number=number,
                algorithm_version=result.algorithm_version,
                seed=seed,
                input_hash=result.input_hash,
                students=len(round_input.students),
                seats=result.seats,
                proposed=len(result.pairs),
                unmatched=len(result.unmatched_student_ids),
                excluded_pairs=len(result.exclusions),
                stable=result.certificate.stable,
                by_sector=[SectorCount(**s) for s in by_sector],
                completed_at=started,
            ),
        )
        return round_doc

    async def get_round(self, round_id: str) -> Doc:
        return await find_or_404(self.rounds, "round", round_id)

    # proposals -----------------------------------------------------------------------------

    async def get_proposal(self, proposal_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.proposals, "proposal", proposal_id, session)

    async def answer(
        self, session: Session, proposal_id: str, party: Party, accept: bool, at: datetime
    ) -> Doc:
        proposal = await self.get_proposal(proposal_id, session)
        answer_field = f"{party.value}_answer"
        if proposal["status"] != "proposed":
            raise conflict(f"proposal {proposal_id!r} is already {proposal['status']}")
        if proposal[answer_field] is not None:
            raise conflict(f"the {party.value} has already answered ({proposal[answer_field]})")
        if at > proposal["respond_by"]:
            raise conflict(
                f"the deadline to answer passed at {proposal['respond_by']:%Y-%m-%d %H:%M} UTC",
                field="respond_by",
            )
        common = proposal_facts(proposal)
        changes: Doc = {
            answer_field: "accepted" if accept else "declined",
            f"{party.value}_answered_at": at,
        }
        if not accept:
            changes["status"] = "declined"
            await self.outbox.add(session, MatchDeclined(**common, party=party, declined_at=at))
        else:
            other = Party.COMPANY if party is Party.STUDENT else Party.STUDENT
            completes = proposal[f"{other.value}_answer"] == "accepted"
            await self.outbox.add(
                session,
                MatchAccepted(
                    **common,
                    party=party,
                    accepted_at=at,
                    respond_by=proposal["respond_by"],
                    completes_placement=completes,
                ),
            )
            if completes:
                changes["status"] = "confirmed"
                changes["placement_id"] = await self._confirm(session, proposal, at)
        # The status guard makes a concurrent answer conflict instead of double-applying.
        updated = await self.proposals.find_one_and_update(
            {"_id": proposal_id, "status": "proposed", answer_field: None},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if updated is None:
            raise conflict(f"proposal {proposal_id!r} changed meanwhile; reload it")
        return updated

    async def _confirm(self, session: Session, proposal: Doc, at: datetime) -> str:
        position = await self.positions.find_one({"_id": proposal["position_id"]}, session=session)
        assert position is not None
        event = PlacementConfirmed(
            placement_id=new_id("plc"),
            **proposal_facts(proposal),
            sector=proposal["sector"],
            start_date=position["start_date"],
            end_date=position["end_date"],
            residence_status=proposal["residence_status"],
            confirmed_at=at,
        )
        placement = {**event.model_dump(mode="json"), "confirmed_at": at}
        await self.placements.insert_one({"_id": event.placement_id, **placement}, session=session)
        await self.outbox.add(session, event)
        return event.placement_id

    async def due_for_expiry(self, at: datetime, limit: int = 200) -> list[str]:
        docs = (
            await self.proposals.find({"status": "proposed", "respond_by": {"$lt": at}}, {"_id": 1})
            .limit(limit)
            .to_list()
        )
        return [d["_id"] for d in docs]

    async def expire(self, session: Session, proposal_id: str, at: datetime) -> bool:
        proposal = await self.proposals.find_one_and_update(
            {"_id": proposal_id, "status": "proposed", "respond_by": {"$lt": at}},
            {"$set": {"status": "expired", "expired_at": at}},
            session=session,
        )
        if proposal is None:
            return False  # answered or expired meanwhile
        await self.outbox.add(
            session,
            MatchExpired(
                **proposal_facts(proposal),
                respond_by=proposal["respond_by"],
                expired_at=at,
            ),
        )
        return True


def pair_docs(result: RoundResult) -> list[Doc]:
    """A round's proposed pairs as stored (and as a replay is compared)."""
    return [
        {
            "student_id": p.student_id,
            "position_id": p.position_id,
            "student_rank": p.student_rank,
            "fit_score": p.fit_score,
        }
        for p in result.pairs
    ]


def proposal_facts(proposal: Doc) -> Doc:
    """The ids every event about a proposal carries."""
    return {
        "proposal_id": proposal["_id"],
        **{
            k: proposal[k]
            for k in ("round_id", "cohort_id", "student_id", "position_id", "company_id")
        },
    }


def certificate_doc(result: RoundResult) -> Doc:
    c = result.certificate
    return {
        "valid": c.valid,
        "stable": c.stable,
        "blocking_pairs": len(c.blocking_pairs),
        "capacity_respected": c.capacity_respected,
        "assignments_acceptable": c.assignments_acceptable,
        "check": "independent blocking-pair scan over every acceptable pair",
    }


def replay(round_doc: Doc) -> tuple[RoundInput, RoundResult]:
    """Re-run a stored round from its stored input and seed."""
    round_input = RoundInput.from_canonical(round_doc["input"], round_doc["seed"])
    return round_input, run_round(round_input)
