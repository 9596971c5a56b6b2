"""The matching service's MongoDB database: read model, rounds, proposals, placements.

Writes that change state put their events in the outbox in the same transaction.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import bson
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

from services.matching.domain import cohort as residual
from services.matching.domain import lifecycle
from services.matching.domain.cohort import PROFILE_FIELDS, CohortFacts
from services.matching.domain.lifecycle import (
    PENDING,
    PLACEMENT,
    PROPOSAL,
    PlacementStatus,
    ProposalStatus,
)
from services.matching.domain.residence import residence_status
from services.matching.domain.rounds import RoundResult, run_round
from services.matching.domain.rules import RoundInput, consent_withdrawn_exclusions
from services.matching.domain.statistics import cohort_records
from shared.documents import find_or_404, utcnow
from shared.errors import DomainError
from shared.events import (
    ApplicationRef,
    InternshipCompleted,
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    OutcomeRecorded,
    PlacementCancelled,
    PlacementConfirmed,
    RoundCompleted,
)
from shared.events.catalog import MAX_NOT_MATCHED_PER_EVENT, ApplicationsNotMatched, SectorCount
from shared.events.vocabulary import (
    CohortState,
    EmploymentOutcome,
    MatchCancelReason,
    Party,
    PlacementCancelReason,
    PositionClosedReason,
)
from shared.ids import new_id
from shared.kpis import CohortRecords, cohort_kpis
from shared.kpis.records import to_millis
from shared.mongo import Session
from shared.outbox import Outbox

Doc = dict[str, Any]

PENDING_VALUES = [s.value for s in PENDING]
# The program's calendar (an internship's days are Kitakyushu days).
PROGRAM_ZONE = ZoneInfo("Asia/Tokyo")

__all__ = ["PROFILE_FIELDS", "MatchingStore"]

# A round's input and its long lists are stored in chunks of at most this many items and
# bytes (`round_parts`), never in the round document: at 100,000 students the input alone is
# tens of MB, past MongoDB's 16 MB document limit.
PART_MAX_ITEMS = 2_000
PART_MAX_BYTES = 1024 * 1024
ROUND_INPUT_PARTS = ("students", "positions", "excluded_pairs")
ROUND_LIST_PARTS = ("pairs", "proposal_ids", "unmatched_student_ids", "exclusions")
# Proposals inserted per insert_many.
INSERT_CHUNK = 1_000


class MatchingStore:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox
        self.cohorts = db["cohorts"]
        self.positions = db["positions"]
        self.applications = db["applications"]
        self.students = db["students"]
        self.rankings = db["rankings"]
        self.rounds = db["rounds"]
        self.proposals = db["proposals"]
        self.placements = db["placements"]
        self.locks = db["cohort_locks"]
        self.round_parts = db["round_parts"]

    async def ensure_indexes(self) -> None:
        # Collections without an index of their own are created here too: created implicitly
        # by their first writes, concurrent consumer transactions conflict on the creation.
        existing = set(await self.db.list_collection_names())
        for collection in (self.cohorts, self.students, self.locks):
            if collection.name not in existing:
                with contextlib.suppress(CollectionInvalid):  # another replica made it
                    await self.db.create_collection(collection.name)
        await self.positions.create_index([("cohort_id", ASCENDING), ("state", ASCENDING)])
        await self.applications.create_index([("cohort_id", ASCENDING), ("state", ASCENDING)])
        await self.applications.create_index("student_id")
        await self.proposals.create_index([("cohort_id", ASCENDING), ("status", ASCENDING)])
        await self.proposals.create_index([("status", ASCENDING), ("respond_by", ASCENDING)])
        await self.proposals.create_index("student_id")
        await self.proposals.create_index("company_id")
        await self.proposals.create_index("position_id")
        await self.proposals.create_index("application_id")
        await self.placements.create_index("cohort_id")
        await self.rounds.create_index([("cohort_id", ASCENDING), ("number", ASCENDING)])
        await self.rankings.create_index("cohort_id")
        await self.round_parts.create_index(
            [("round_id", ASCENDING), ("part", ASCENDING), ("seq", ASCENDING)]
        )

    # read model: facts from the applications service ----------------------------------------

    async def cohort_changed(self, session: Session, cohort_id: str, fields: Doc) -> None:
        """Keep the copy of a cohort's state (events of one cohort arrive in order; a replayed
        older one must not win)."""
        current = await self.cohorts.find_one({"_id": cohort_id}, session=session)
        if current is not None and current["changed_at"] > fields["changed_at"]:
            return
        await self.cohorts.update_one(
            {"_id": cohort_id}, {"$set": fields}, upsert=True, session=session
        )

    async def get_cohort(self, cohort_id: str, session: Session | None = None) -> Doc:
        cohort = await self.cohorts.find_one({"_id": cohort_id}, session=session)
        if cohort is None:
            raise DomainError(
                f"cohort {cohort_id!r} is not known to the matching service (it learns cohorts "
                "from cohort-state-changed; one created a moment ago may take a second)",
                field="cohort_id",
                status_code=404,
            )
        return cohort

    async def profile_changed(self, session: Session, student_id: str, facts: Doc, at: Any) -> bool:
        """Keep the newest profile facts of a student; False when `facts` are older. Only
        `student-profile-updated` (keyed by student) writes here: the copy an application
        carries stays in the application's document (one writer per document)."""
        current = await self.students.find_one({"_id": student_id}, session=session)
        if current is not None and _time(current["as_of"]) >= _time(at):
            return False
        await self.students.replace_one(
            {"_id": student_id},
            {"_id": student_id, **facts, "as_of": at},
            upsert=True,
            session=session,
        )
        return True

    async def position_closed(
        self, session: Session, position_id: str, reason: PositionClosedReason | None, at: datetime
    ) -> None:
        """Its pending proposals lose their ground; so does a placement confirmed after the
        closing (an answer that crossed it in flight)."""
        await self.cancel_pending(
            session, {"position_id": position_id}, lifecycle.cancel_reason_for_closing(reason), at
        )
        for placement in await self.placements.find(
            {"position_id": position_id}, session=session
        ).to_list():
            if lifecycle.confirmed_after_closing(placement, at):
                await self.cancel_placement(
                    session,
                    placement["_id"],
                    lifecycle.placement_reason_for_closing(reason),
                    None,
                    at,
                )

    async def application_withdrawn(
        self, session: Session, application_id: str, reason: str, at: datetime
    ) -> None:
        """Its pending proposal loses its ground. A placement it already has (a withdrawal
        the applications service accepted before it heard of the confirmation) is cancelled
        too, with the same reason: the student's withdrawal came first."""
        await self.cancel_pending(
            session,
            {"application_id": application_id},
            lifecycle.cancel_reason_for_withdrawal(reason),
            at,
        )
        confirmed = await self.proposals.find(
            {"application_id": application_id, "status": ProposalStatus.CONFIRMED.value},
            session=session,
        ).to_list()
        for proposal in confirmed:
            placement = await self.placements.find_one(
                {"_id": proposal.get("placement_id")}, session=session
            )
            if placement is not None and _placement_status(placement) is PlacementStatus.CONFIRMED:
                await self.cancel_placement(
                    session,
                    placement["_id"],
                    lifecycle.placement_reason_for_withdrawal(reason),
                    None,
                    at,
                )

    # rounds --------------------------------------------------------------------------------

    async def cohort_facts(self, session: Session, cohort_id: str) -> CohortFacts:
        """One read of what a cohort's round is made of, through indexes: open positions,
        every application, proposals and rankings by cohort, and the profiles of the
        cohort's students by `_id` (`_profiles_of`)."""
        positions = await self.positions.find(
            {"cohort_id": cohort_id, "state": "open", "capacity": {"$exists": True}},
            session=session,
        ).to_list()
        applications = await self.applications.find(
            {"cohort_id": cohort_id}, session=session
        ).to_list()
        profiles = await self._profiles_of({a["student_id"] for a in applications}, session)
        proposals = await self.proposals.find(
            {"cohort_id": cohort_id},
            {"student_id": 1, "position_id": 1, "status": 1, "placement_status": 1},
            session=session,
        ).to_list()
        rankings = {
            r["_id"]: tuple(r["ranked_student_ids"])
            for r in await self.rankings.find({"cohort_id": cohort_id}, session=session).to_list()
        }
        return CohortFacts(
            cohort_id=cohort_id,
            positions=positions,
            applications=applications,
            profiles=profiles,
            proposals=proposals,
            rankings=rankings,
        )

    async def _profiles_of(self, student_ids: set[str], session: Session) -> dict[str, Doc]:
        """The profile documents of `student_ids`: one scan of the `_id` index between the
        smallest and the largest of them, the others in that range left out here. Not an
        `$in` of every id (the embedded MongoDB compares each document with each id of an
        `$in`: quadratic), nor a `$lookup` (one index probe per application, measured 4x
        slower at 5,000 students); a cohort's student numbers cluster by entry year."""
        if not student_ids:
            return {}
        found = await self.students.find(
            {"_id": {"$gte": min(student_ids), "$lte": max(student_ids)}},
            {field: 1 for field in (*PROFILE_FIELDS, "as_of")},
            session=session,
        ).to_list()
        return {doc["_id"]: doc for doc in found if doc["_id"] in student_ids}

    async def round_input(self, session: Session, cohort_id: str, seed: int) -> RoundInput:
        """The residual market of a cohort (services/matching/domain/cohort.py), as a preview
        sees it: the same one read a round makes."""
        return residual.round_input(await self.cohort_facts(session, cohort_id), seed)

    async def start_round(
        self, session: Session, cohort_id: str, seed: int, respond_within: timedelta
    ) -> Doc:
        cohort = await self.get_cohort(cohort_id, session)
        lifecycle.check_round_allowed(cohort_id, CohortState(cohort["state"]))
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
        facts = await self.cohort_facts(session, cohort_id)
        round_input = residual.round_input(facts, seed)
        if not round_input.positions and not round_input.students:
            raise DomainError(
                f"cohort {cohort_id!r} has no open positions or applications to match",
                field="cohort_id",
            )
        result = run_round(round_input)
        if not result.certificate.valid:
            # Never publish a matching that fails its own certificate.
            raise RuntimeError(f"round certificate failed: {result.certificate}")
        left_out = consent_withdrawn_exclusions(residual.consent_withdrawn(facts))
        # Milliseconds, as MongoDB stores them: the deadline in the events, in this service's
        # documents and in every other service's copy is then the very same instant.
        started = to_millis(utcnow())
        respond_by = to_millis(started + respond_within)
        round_id = f"round-{cohort_id}-{number}"
        positions = {p["_id"]: p for p in facts.positions}  # the round's, from the same read
        sector_of = {pid: p["sector"] for pid, p in positions.items()}
        seats_of = {p.id: max(0, p.seats) for p in round_input.positions}
        by_sector = result.by_sector(sector_of, seats_of)
        application_of = {s.id: s.application_id for s in round_input.students}
        unmatched = [
            ApplicationRef(application_id=application_of[sid], student_id=sid)
            for sid in result.unmatched_student_ids
        ]

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
                "status": ProposalStatus.PROPOSED.value,
                "student_answer": None,
                "company_answer": None,
            }
            proposals.append(proposal)
        exclusions = [*result.exclusions, *left_out]
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
                for e in exclusions
            ],
            "certificate": certificate_doc(result),
            "statistics": {
                "students": len(round_input.students),
                "seats": result.seats,
                "proposed": len(result.pairs),
                "unmatched": len(result.unmatched_student_ids),
                "excluded_pairs": len(exclusions),
                "by_sector": by_sector,
            },
            "respond_by": respond_by,
            "completed_at": started,
        }
        await self._store_round(session, round_doc)
        for start in range(0, len(proposals), INSERT_CHUNK):
            await self.proposals.insert_many(
                proposals[start : start + INSERT_CHUNK], ordered=False, session=session
            )
        await self.outbox.add_many(
            session,
            (
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
                    application_id=proposal["application_id"],
                )
                for proposal in proposals
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
                excluded_pairs=len(exclusions),
                stable=result.certificate.stable,
                by_sector=[SectorCount(**s) for s in by_sector],
                completed_at=started,
            ),
        )
        # The applications left without a proposal, in bounded parts (never one event that
        # grows with the cohort).
        parts = [
            unmatched[i : i + MAX_NOT_MATCHED_PER_EVENT]
            for i in range(0, len(unmatched), MAX_NOT_MATCHED_PER_EVENT)
        ]
        for number_of_part, part in enumerate(parts, start=1):
            await self.outbox.add(
                session,
                ApplicationsNotMatched(
                    round_id=round_id,
                    cohort_id=cohort_id,
                    round_number=number,
                    part=number_of_part,
                    parts=len(parts),
                    applications=part,
                    completed_at=started,
                ),
            )
        return round_doc

    async def _store_round(self, session: Session, round_doc: Doc) -> None:
        """The round's summary as one document; its input and long lists as bounded chunks
        in `round_parts` (the summary says how many of each)."""
        parts: list[Doc] = []
        counts: dict[str, int] = {}
        pieces = {**round_doc["input"], **{k: round_doc[k] for k in ROUND_LIST_PARTS}}
        for name in (*ROUND_INPUT_PARTS, *ROUND_LIST_PARTS):
            chunks = bounded_chunks(pieces[name], PART_MAX_ITEMS, PART_MAX_BYTES)
            counts[name] = len(chunks)
            parts.extend(
                {
                    "_id": f"{round_doc['_id']}:{name}:{seq:06d}",
                    "round_id": round_doc["_id"],
                    "part": name,
                    "seq": seq,
                    "items": items,
                }
                for seq, items in enumerate(chunks)
            )
        summary = {k: v for k, v in round_doc.items() if k != "input" and k not in ROUND_LIST_PARTS}
        await self.rounds.insert_one(
            {**summary, "parts": counts},
            session=session,
        )
        if parts:
            # PyMongo splits this into messages of at most 48 MB; each chunk is <= 1 MB.
            await self.round_parts.insert_many(parts, ordered=False, session=session)

    async def get_round(
        self,
        round_id: str,
        parts: tuple[str, ...] = ROUND_LIST_PARTS,
        session: Session | None = None,
    ) -> Doc:
        """A round with the long lists named in `parts` ("input" for its whole input),
        read back from their chunks."""
        doc = await find_or_404(self.rounds, "round", round_id, session)
        if "parts" not in doc:
            return doc  # stored before rounds were chunked: everything is inline
        names = [n for n in parts if n != "input"]
        if "input" in parts:
            names += ROUND_INPUT_PARTS
        items: dict[str, list[Any]] = {n: [] for n in names}
        read: dict[str, int] = dict.fromkeys(names, 0)
        if names:
            async for chunk in self.round_parts.find(
                {"round_id": round_id, "part": {"$in": names}},
                sort=[("part", ASCENDING), ("seq", ASCENDING)],
                session=session,
            ):
                items[chunk["part"]].extend(chunk["items"])
                read[chunk["part"]] += 1
        missing = [n for n in names if read[n] != doc["parts"].get(n)]
        if missing:  # never a partial list read as if it were whole
            raise RuntimeError(f"round {round_id!r}: stored parts {missing} are incomplete")
        if "input" in parts:
            doc["input"] = {
                "cohort_id": doc["cohort_id"],
                **{n: items.pop(n) for n in ROUND_INPUT_PARTS},
            }
        return {**{k: v for k, v in doc.items() if k != "parts"}, **items}

    # proposals -----------------------------------------------------------------------------

    async def get_proposal(self, proposal_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.proposals, "proposal", proposal_id, session)

    async def answer(
        self, session: Session, proposal_id: str, party: Party, accept: bool, at: datetime
    ) -> Doc:
        proposal = await self.get_proposal(proposal_id, session)
        target, completes = lifecycle.answer(proposal, party, accept, at)
        answer_field = f"{party.value}_answer"
        common = proposal_facts(proposal)
        changes: Doc = {
            "status": target.value,
            answer_field: "accepted" if accept else "declined",
            f"{party.value}_answered_at": at,
        }
        if not accept:
            await self.outbox.add(session, MatchDeclined(**common, party=party, declined_at=at))
        else:
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
                changes["placement_id"] = await self._confirm(session, proposal, at)
                changes["placement_status"] = PlacementStatus.CONFIRMED.value
        # The status guard makes a concurrent answer or cancellation conflict instead of
        # double-applying.
        updated = await self.proposals.find_one_and_update(
            {"_id": proposal_id, "status": proposal["status"], answer_field: None},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if updated is None:
            raise DomainError(
                f"proposal {proposal_id!r} changed meanwhile; reload it", status_code=409
            )
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
        placement = {
            **event.model_dump(mode="json"),
            "confirmed_at": at,
            "status": PlacementStatus.CONFIRMED.value,
        }
        await self.placements.insert_one({"_id": event.placement_id, **placement}, session=session)
        await self.outbox.add(session, event)
        return event.placement_id

    async def cancel_pending(
        self, session: Session, query: Doc, reason: MatchCancelReason, at: datetime
    ) -> list[str]:
        """Cancel every pending proposal matching `query` (its ground went away): the seat is
        free for the next round and both parties are told (match-cancelled)."""
        cancelled = []
        for proposal in await self.proposals.find(
            {**query, "status": {"$in": PENDING_VALUES}}, session=session
        ).to_list():
            if await self._cancel_one(session, proposal, reason, at):
                cancelled.append(proposal["_id"])
        return cancelled

    async def cancel_proposal(
        self, session: Session, proposal_id: str, reason: MatchCancelReason, at: datetime
    ) -> Doc:
        proposal = await self.get_proposal(proposal_id, session)
        PROPOSAL.check(
            ProposalStatus(proposal["status"]), ProposalStatus.CANCELLED, ident=proposal_id
        )
        if not await self._cancel_one(session, proposal, reason, at):
            raise DomainError(
                f"proposal {proposal_id!r} changed meanwhile; reload it", status_code=409
            )
        return await self.get_proposal(proposal_id, session)

    async def _cancel_one(
        self, session: Session, proposal: Doc, reason: MatchCancelReason, at: datetime
    ) -> bool:
        updated = await self.proposals.find_one_and_update(
            {"_id": proposal["_id"], "status": {"$in": PENDING_VALUES}},
            {
                "$set": {
                    "status": ProposalStatus.CANCELLED.value,
                    "cancel_reason": reason.value,
                    "cancelled_at": at,
                }
            },
            session=session,
        )
        if updated is None:
            return False  # answered, expired or cancelled meanwhile
        await self.outbox.add(
            session,
            MatchCancelled(
                **proposal_facts(proposal),
                sector=proposal["sector"],
                reason=reason,
                cancelled_at=at,
            ),
        )
        return True

    # placements ----------------------------------------------------------------------------

    async def get_placement(self, placement_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.placements, "placement", placement_id, session)

    async def cancel_placement(
        self,
        session: Session,
        placement_id: str,
        reason: PlacementCancelReason,
        note_code: str | None,
        at: datetime,
    ) -> Doc:
        """confirmed -> cancelled: the seat is free again and both sides are told."""
        placement = await self.get_placement(placement_id, session)
        PLACEMENT.check(_placement_status(placement), PlacementStatus.CANCELLED, ident=placement_id)
        changes = {
            "status": PlacementStatus.CANCELLED.value,
            "cancel_reason": reason.value,
            "note_code": note_code,
            "cancelled_at": at,
        }
        await self.placements.update_one({"_id": placement_id}, {"$set": changes}, session=session)
        proposal = await self.get_proposal(placement["proposal_id"], session)
        await self.proposals.update_one(
            {"_id": proposal["_id"]},
            {"$set": {"placement_status": PlacementStatus.CANCELLED.value}},
            session=session,
        )
        await self.outbox.add(
            session,
            PlacementCancelled(
                placement_id=placement_id,
                **proposal_facts(proposal),
                sector=proposal["sector"],
                reason=reason,
                note_code=note_code,
                cancelled_at=at,
            ),
        )
        return {**placement, **changes}

    async def complete_placement(
        self, session: Session, placement_id: str, completed_on: date | None, at: datetime
    ) -> Doc:
        """confirmed -> completed: the internship took place (its last day defaults to the
        position's end date)."""
        placement = await self.get_placement(placement_id, session)
        last_day = completed_on or date.fromisoformat(placement["end_date"])
        lifecycle.check_completion(placement, last_day, at.astimezone(PROGRAM_ZONE).date())
        changes = {
            "status": PlacementStatus.COMPLETED.value,
            "completed_on": last_day.isoformat(),
            "completed_at": at,
        }
        updated = await self.placements.find_one_and_update(
            {"_id": placement_id, "status": PlacementStatus.CONFIRMED.value},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if updated is None:
            raise DomainError(
                f"placement {placement_id!r} changed meanwhile; reload it", status_code=409
            )
        await self.proposals.update_one(
            {"_id": placement["proposal_id"]},
            {"$set": {"placement_status": PlacementStatus.COMPLETED.value}},
            session=session,
        )
        await self.outbox.add(
            session,
            InternshipCompleted(
                **placement_facts(placement),
                completed_on=last_day,
                recorded_at=at,
            ),
        )
        return updated

    async def record_outcome(
        self,
        session: Session,
        placement_id: str,
        outcome: EmploymentOutcome,
        note_code: str | None,
        at: datetime,
    ) -> Doc:
        """The intern's outcome after a completed internship; recorded again when it changes
        (each recording is kept, the latest stands)."""
        placement = await self.get_placement(placement_id, session)
        lifecycle.check_outcome_allowed(placement)
        entry = {"outcome": outcome.value, "note_code": note_code, "recorded_at": at}
        updated = await self.placements.find_one_and_update(
            {"_id": placement_id, "status": PlacementStatus.COMPLETED.value},
            {
                "$set": {"outcome": outcome.value, "outcome_recorded_at": at},
                "$push": {"outcome_history": entry},
            },
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if updated is None:
            raise DomainError(
                f"placement {placement_id!r} changed meanwhile; reload it", status_code=409
            )
        await self.outbox.add(
            session,
            OutcomeRecorded(
                **placement_facts(placement),
                outcome=outcome,
                note_code=note_code,
                recorded_at=at,
            ),
        )
        return updated

    # expiry --------------------------------------------------------------------------------

    async def due_for_expiry(self, at: datetime, limit: int = 200) -> list[str]:
        docs = (
            await self.proposals.find(
                {"status": {"$in": PENDING_VALUES}, "respond_by": {"$lt": at}}, {"_id": 1}
            )
            .limit(limit)
            .to_list()
        )
        return [d["_id"] for d in docs]

    async def expire(self, session: Session, proposal_id: str, at: datetime) -> bool:
        proposal = await self.proposals.find_one_and_update(
            {"_id": proposal_id, "status": {"$in": PENDING_VALUES}, "respond_by": {"$lt": at}},
            {"$set": {"status": ProposalStatus.EXPIRED.value, "expired_at": at}},
            session=session,
        )
        if proposal is None:
            return False  # answered, cancelled or expired meanwhile
        await self.outbox.add(
            session,
            MatchExpired(
                **proposal_facts(proposal),
                respond_by=proposal["respond_by"],
                expired_at=at,
            ),
        )
        return True

    # statistics ----------------------------------------------------------------------------

    async def cohort_documents(self, cohort_id: str) -> dict[str, Any]:
        """A cohort's documents: what its KPIs and its report are made of (404 for a cohort
        matching does not know: an unknown cohort is not a page of zeros)."""
        cohort = await self.get_cohort(cohort_id)
        query = {"cohort_id": cohort_id}
        return {
            "cohort": cohort,
            "positions": await self.positions.find(query).to_list(),
            "applications": await self.applications.find(query).to_list(),
            "proposals": await self.proposals.find(query).to_list(),
            "placements": await self.placements.find(query).to_list(),
            "rounds": await self.rounds.find(
                query, {"input": 0, "exclusions": 0, "pairs": 0}
            ).to_list(),
        }

    async def cohort_records(self, cohort_id: str) -> CohortRecords:
        return cohort_records(**await self.cohort_documents(cohort_id))

    async def statistics(self, cohort_id: str) -> Doc:
        return cohort_kpis(await self.cohort_records(cohort_id))

    async def all_cohort_records(self) -> list[CohortRecords]:
        return [
            await self.cohort_records(c["_id"])
            for c in await self.cohorts.find({}, {"_id": 1}).sort("_id").to_list()
        ]


def _time(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _placement_status(placement: Doc) -> PlacementStatus:
    # Placements stored before the lifecycle was modelled have no status: they are confirmed.
    return PlacementStatus(placement.get("status", PlacementStatus.CONFIRMED.value))


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
            for k in (
                "round_id",
                "cohort_id",
                "student_id",
                "position_id",
                "company_id",
                "application_id",
            )
        },
    }


def placement_facts(placement: Doc) -> Doc:
    """The ids and sector every event about a placement carries."""
    return {
        k: placement[k]
        for k in (
            "placement_id",
            "proposal_id",
            "round_id",
            "cohort_id",
            "student_id",
            "position_id",
            "company_id",
            "application_id",
            "sector",
        )
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


def bounded_chunks(items: list[Any], max_items: int, max_bytes: int) -> list[list[Any]]:
    """`items` in order, cut into lists of at most `max_items` items and about `max_bytes`
    of BSON each (an item larger than `max_bytes` gets a chunk of its own)."""
    chunks: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for item in items:
        item_size = len(bson.encode({"i": item}))
        if current and (len(current) >= max_items or size + item_size > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def replay(round_doc: Doc) -> tuple[RoundInput, RoundResult]:
    """Re-run a stored round from its stored input and seed (`get_round(..., ("input",
    *ROUND_LIST_PARTS))` reads it back from its chunks)."""
    round_input = RoundInput.from_canonical(round_doc["input"], round_doc["seed"])
    return round_input, run_round(round_input)
