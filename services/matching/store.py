"""The matching service's MongoDB database: read model, rounds, proposals, placements.

Writes that change state put their events in the outbox in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, ReplaceOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.matching.domain import lifecycle
from services.matching.domain.lifecycle import (
    PENDING,
    PLACEMENT,
    PROPOSAL,
    PlacementStatus,
    ProposalStatus,
)
from services.matching.domain.residence import residence_status
from services.matching.domain.rounds import RoundResult, run_round
from services.matching.domain.rules import (
    PositionInput,
    Reason,
    RoundInput,
    StudentInput,
    consent_withdrawn_exclusions,
)
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

# The profile facts matching decides on (application-submitted carries the copy at submission,
# student-profile-updated every later change).
PROFILE_FIELDS = (
    "department",
    "degree_program",
    "graduation_year",
    "jlpt_level",
    "english_level",
    "skills",
    "available_from",
    "available_to",
    "consent_to_data_use",
)

# What earlier answers or cancellations rule out for a pair in later rounds.
PAIR_EXCLUSIONS = {
    ProposalStatus.DECLINED: Reason.PREVIOUSLY_DECLINED,
    ProposalStatus.EXPIRED: Reason.PREVIOUSLY_EXPIRED,
    ProposalStatus.CANCELLED: Reason.PREVIOUSLY_CANCELLED,
}


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

    async def ensure_indexes(self) -> None:
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
        """Keep the newest profile facts of a student; False when `facts` are older."""
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

    async def profiles_changed(self, session: Session, changes: list[tuple[str, Doc, Any]]) -> None:
        """`profile_changed` for many (student id, facts, as of) at once, in order: one read of
        the students concerned, one bulk write of those whose facts are newer."""
        newest: dict[str, tuple[Doc, Any]] = {}
        for student_id, facts, at in changes:
            known = newest.get(student_id)
            if known is None or _time(known[1]) < _time(at):  # an equal time: the first stands
                newest[student_id] = (facts, at)
        current = {
            doc["_id"]: doc["as_of"]
            for doc in await self.students.find(
                {"_id": {"$in": list(newest)}}, {"as_of": 1}, session=session
            ).to_list()
        }
        writes = [
            ReplaceOne({"_id": student_id}, {"_id": student_id, **facts, "as_of": at}, upsert=True)
            for student_id, (facts, at) in newest.items()
            if student_id not in current or _time(current[student_id]) < _time(at)
        ]
        if writes:
            await self.students.bulk_write(writes, ordered=False, session=session)

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

    async def round_input(self, session: Session, cohort_id: str, seed: int) -> RoundInput:
        """The residual market of a cohort: free seats, students not yet holding a proposal
        or a placement, on their current profile facts, and the pairs earlier answers or
        cancellations ruled out."""
        proposals = await self.proposals.find({"cohort_id": cohort_id}, session=session).to_list()
        holding = [p for p in proposals if lifecycle.holds_seat(p)]
        taken: dict[str, int] = {}
        for p in holding:
            taken[p["position_id"]] = taken.get(p["position_id"], 0) + 1
        busy_students = {p["student_id"] for p in holding}
        excluded: dict[tuple[str, str], Reason] = {}
        for p in proposals:
            status = ProposalStatus(p["status"])
            pair = (p["student_id"], p["position_id"])
            if status in PAIR_EXCLUSIONS:
                excluded[pair] = PAIR_EXCLUSIONS[status]
            elif p.get("placement_status") == PlacementStatus.CANCELLED:
                excluded[pair] = Reason.PLACEMENT_CANCELLED
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
        active = await self.applications.find(
            {"cohort_id": cohort_id, "state": "active", "ranked_position_ids": {"$exists": True}},
            session=session,
        ).to_list()
        # One application per student: if an edit's two events crossed, the newer one counts.
        latest: dict[str, Doc] = {}
        for a in sorted(active, key=lambda a: a["submitted_at"]):
            latest[a["student_id"]] = a
        profiles = {
            s["_id"]: s
            for s in await self.students.find(
                {"_id": {"$in": list(latest)}}, session=session
            ).to_list()
        }
        students = []
        for student_id, a in sorted(latest.items()):
            if student_id in busy_students:
                continue
            facts = {**a, **profiles.get(student_id, {})}  # the newest profile facts win
            students.append(
                StudentInput(
                    id=student_id,
                    application_id=a["_id"],
                    ranked_position_ids=tuple(a["ranked_position_ids"]),
                    department=facts.get("department", ""),
                    jlpt_level=facts.get("jlpt_level"),
                    english_level=facts.get("english_level"),
                    skills=tuple(facts.get("skills", [])),
                    available_from=date.fromisoformat(facts["available_from"]),
                    available_to=date.fromisoformat(facts["available_to"]),
                    consent_to_data_use=facts["consent_to_data_use"],
                )
            )
        return RoundInput(
            cohort_id=cohort_id,
            seed=seed,
            students=tuple(students),
            positions=tuple(positions),
            excluded_pairs=excluded,
        )

    async def consent_withdrawn(
        self, session: Session, cohort_id: str
    ) -> list[tuple[str, tuple[str, ...]]]:
        """(student, ranked positions) of applications withdrawn with the student's consent,
        for students with no other active application in the cohort."""
        withdrawn = await self.applications.find(
            {
                "cohort_id": cohort_id,
                "state": "withdrawn",
                "withdrawn_reason": "consent_withdrawn",
                "ranked_position_ids": {"$exists": True},
            },
            session=session,
        ).to_list()
        still_in = set(
            await self.applications.distinct(
                "student_id", {"cohort_id": cohort_id, "state": "active"}, session=session
            )
        )
        return [
            (a["student_id"], tuple(a["ranked_position_ids"]))
            for a in withdrawn
            if a["student_id"] not in still_in
        ]

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
        left_out = consent_withdrawn_exclusions(await self.consent_withdrawn(session, cohort_id))
        # Milliseconds, as MongoDB stores them: the deadline in the events, in this service's
        # documents and in every other service's copy is then the very same instant.
        started = to_millis(utcnow())
        respond_by = to_millis(started + respond_within)
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
                    application_id=proposal["application_id"],
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

    async def get_round(self, round_id: str) -> Doc:
        return await find_or_404(self.rounds, "round", round_id)

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


def replay(round_doc: Doc) -> tuple[RoundInput, RoundResult]:
    """Re-run a stored round from its stored input and seed."""
    round_input = RoundInput.from_canonical(round_doc["input"], round_doc["seed"])
    return round_input, run_round(round_input)
