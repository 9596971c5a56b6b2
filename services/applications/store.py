"""The applications service's MongoDB database and its transactional writes.

Every write that changes state also writes its events to the outbox in the same transaction,
so either both happen or neither does.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.applications import domain, lifecycle
from services.applications.domain import (
    ApplicationEdit,
    ApplicationIn,
    CohortIn,
    CompanyIn,
    ContactIn,
    PositionIn,
    RankingIn,
    StudentIn,
)
from services.applications.lifecycle import (
    COHORT,
    COMPANY,
    POSITION_CLOSE_REASON,
    ApplicationState,
    cohort_state,
)
from shared.documents import find_or_404, utcnow
from shared.errors import conflict
from shared.events import (
    ApplicantsRanked,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CohortStateChanged,
    CompanyStatusChanged,
    ContactRecord,
    PositionClosed,
    PositionPublished,
    StudentProfileUpdated,
)
from shared.events.contacts import contact_key
from shared.events.vocabulary import CohortState, CompanyStatus, PositionClosedReason
from shared.ids import new_id
from shared.mongo import Session
from shared.outbox import Outbox

Doc = dict[str, Any]


class ApplicationsStore:
    def __init__(self, db: AsyncDatabase[Doc], outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox
        self.cohorts = db["cohorts"]
        self.companies = db["companies"]
        self.positions = db["positions"]
        # One document per contact address a live company holds: {_id: address, company_id}.
        # The unique _id makes two registrations of one address conflict even when they race.
        self.addresses = db["company_addresses"]
        self.students = db["students"]
        self.applications = db["applications"]
        self.rankings = db["rankings"]

    async def ensure_indexes(self) -> None:
        await self.positions.create_index([("cohort_id", ASCENDING), ("state", ASCENDING)])
        await self.positions.create_index("company_id")
        await self.applications.create_index(
            [("student_id", ASCENDING), ("cohort_id", ASCENDING), ("state", ASCENDING)]
        )
        await self.applications.create_index("ranked_position_ids")
        await self.addresses.create_index("company_id")
        await self.companies.create_index("contact_address")
        await self._claim_existing_addresses()

    async def _claim_existing_addresses(self) -> None:
        """Companies registered before addresses were claimed get their claims now (bounded by
        the number of companies; the first by id wins). An address two live companies already
        share stays unclaimed by the second; `python -m services.portal identities` lists it."""
        live = {s.value for s in lifecycle.ADDRESS_HOLDING}
        async for company in self.companies.find({"contact_address": None}).sort("_id"):
            key = domain.address_key(company["contact"]["email"])
            await self.companies.update_one(
                {"_id": company["_id"]}, {"$set": {"contact_address": key}}
            )
            if company["status"] not in live:
                continue
            with contextlib.suppress(DuplicateKeyError):  # shared already: reported, not settled
                await self.addresses.insert_one({"_id": key, "company_id": company["_id"]})

    # cohorts -------------------------------------------------------------------------------

    async def create_cohort(self, session: Session, body: CohortIn) -> Doc:
        if await self.cohorts.find_one({"_id": body.id}, session=session):
            raise conflict(f"cohort {body.id!r} already exists", field="id")
        doc = {
            "_id": body.id,
            "name": body.name,
            "application_opens": body.application_opens,
            "application_closes": body.application_closes,
            "state": CohortState.DRAFT.value,
            "rounds": 0,
            "created_at": utcnow(),
        }
        await self.cohorts.insert_one(doc, session=session)
        await self._cohort_changed(session, doc, None, CohortState.DRAFT, doc["created_at"])
        return doc

    async def transition_cohort(
        self, session: Session, cohort_id: str, target: CohortState, round_id: str | None = None
    ) -> Doc:
        """One step of the cohort's lifecycle, checked against its machine (409 otherwise)."""
        cohort = await self.get_cohort(cohort_id, session)
        current = cohort_state(cohort)
        COHORT.check(current, target, ident=cohort_id)
        return await self._set_cohort_state(session, cohort, current, target, round_id)

    async def _set_cohort_state(
        self,
        session: Session,
        cohort: Doc,
        current: CohortState,
        target: CohortState,
        round_id: str | None = None,
    ) -> Doc:
        at = utcnow()
        changes = {"state": target.value, f"{target.value}_at": at}
        await self.cohorts.update_one({"_id": cohort["_id"]}, {"$set": changes}, session=session)
        updated = {**cohort, **changes}
        await self._cohort_changed(session, updated, current, target, at, round_id)
        return updated

    async def _cohort_changed(
        self,
        session: Session,
        cohort: Doc,
        current: CohortState | None,
        target: CohortState,
        at: Any,
        round_id: str | None = None,
    ) -> None:
        await self.outbox.add(
            session,
            CohortStateChanged(
                cohort_id=cohort["_id"],
                from_state=current,
                to_state=target,
                application_opens=cohort["application_opens"],
                application_closes=cohort["application_closes"],
                round_id=round_id,
                changed_at=at,
            ),
        )

    async def round_completed(self, session: Session, cohort_id: str, round_id: str) -> None:
        """A round ran: count it, and move the cohort on to matching if it is not there yet."""
        cohort = await self.cohorts.find_one_and_update(
            {"_id": cohort_id}, {"$inc": {"rounds": 1}}, session=session
        )
        if cohort is None:
            return  # a cohort this service does not know: nothing to move
        current = cohort_state(cohort)
        target = lifecycle.state_after_round(current)
        if target is not None:
            await self._set_cohort_state(session, cohort, current, target, round_id)

    async def get_cohort(self, cohort_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.cohorts, "cohort", cohort_id, session)

    # companies -----------------------------------------------------------------------------

    async def register_company(self, session: Session, body: CompanyIn) -> Doc:
        doc = {
            "_id": new_id("co"),
            **body.model_dump(mode="json", exclude={"contact"}),
            "contact": body.contact.model_dump(mode="json"),
            "contact_address": domain.address_key(body.contact.email),
            "status": CompanyStatus.PENDING.value,
            "registered_at": utcnow(),
        }
        await self._claim_address(session, body.contact.email, doc["_id"], "contact.email")
        await self.companies.insert_one(doc, session=session)
        contact = self._company_contact(doc)
        await self.outbox.add_contact(session, contact.key, contact)
        # The company enters the lifecycle as pending (no previous status): the notifications
        # service confirms the registration to its contact and says what happens next.
        await self.outbox.add(
            session,
            CompanyStatusChanged(
                company_id=doc["_id"],
                status=CompanyStatus.PENDING,
                sector=body.sector,
                changed_at=doc["registered_at"],
            ),
        )
        return doc

    async def decide_company(self, session: Session, company_id: str, status: CompanyStatus) -> Doc:
        """Approve, reject or suspend. Rejecting or suspending closes the company's open
        positions (matching then cancels their pending proposals)."""
        company = await self.get_company(company_id, session)
        previous = CompanyStatus(company["status"])
        COMPANY.check(previous, status, ident=company_id)
        address = company["contact"]["email"]
        if lifecycle.holds_address(status) and not lifecycle.holds_address(previous):
            # A reconsidered rejection: the address may have gone to another company since.
            await self._claim_address(session, address, company_id, "contact.email", 409)
        elif lifecycle.holds_address(previous) and not lifecycle.holds_address(status):
            await self._release_address(session, address, company_id)
        at = utcnow()
        await self.companies.update_one(
            {"_id": company_id},
            {"$set": {"status": status.value, "decided_at": at}},
            session=session,
        )
        closed: list[str] = []
        reason = POSITION_CLOSE_REASON.get(status)
        if reason is not None:
            for position in await self.positions.find(
                {"company_id": company_id, "state": "open"}, session=session
            ).to_list():
                await self.close_position(session, position, reason)
                closed.append(position["_id"])
        await self.outbox.add(
            session,
            CompanyStatusChanged(
                company_id=company_id,
                status=status,
                previous_status=previous,
                sector=company["sector"],
                closed_position_ids=closed,
                changed_at=at,
            ),
        )
        return {**company, "status": status.value, "decided_at": at, "closed_position_ids": closed}

    async def change_contact(self, session: Session, company_id: str, contact: ContactIn) -> Doc:
        """The company's contact person, language and time zone (the restricted `contacts`
        record follows, so mails go to the new address in the new language and zone)."""
        company = await self.get_company(company_id, session)
        if lifecycle.holds_address(CompanyStatus(company["status"])):
            old, new = company["contact"]["email"], contact.email
            if domain.address_key(old) != domain.address_key(new):
                await self._claim_address(session, new, company_id, "email")
                await self._release_address(session, old, company_id)
        changed = {**company, "contact": contact.model_dump(mode="json")}
        await self.companies.update_one(
            {"_id": company_id},
            {
                "$set": {
                    "contact": changed["contact"],
                    "contact_address": domain.address_key(contact.email),
                }
            },
            session=session,
        )
        contact_record = self._company_contact(changed)
        await self.outbox.add_contact(session, contact_record.key, contact_record)
        return changed

    async def _claim_address(
        self, session: Session, email: str, company_id: str, field: str, status_code: int = 422
    ) -> None:
        key = domain.address_key(email)
        holder = await self.addresses.find_one({"_id": key}, session=session)
        if holder is not None:
            if holder["company_id"] != company_id:
                raise domain.address_in_use(field, status_code)
            return
        try:
            await self.addresses.insert_one({"_id": key, "company_id": company_id}, session=session)
        except DuplicateKeyError as exc:  # claimed by a registration that committed first
            raise domain.address_in_use(field, status_code) from exc

    async def _release_address(self, session: Session, email: str, company_id: str) -> None:
        await self.addresses.delete_one(
            {"_id": domain.address_key(email), "company_id": company_id}, session=session
        )

    async def companies_by_address(self, email: str) -> list[Doc]:
        """The companies whose contact is this address (any status, any spelling of case)."""
        cursor = self.companies.find({"contact_address": domain.address_key(email)})
        return await cursor.sort("_id").to_list()

    async def get_company(self, company_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.companies, "company", company_id, session)

    @staticmethod
    def _company_contact(company: Doc) -> ContactRecord:
        contact = company["contact"]
        return ContactRecord(
            party_id=company["_id"],
            party_type="company",
            name=contact["name"],
            email=contact["email"],
            preferred_language=contact["preferred_language"],
            organisation_ja=company["name_ja"],
            organisation_en=company["name_en"],
            time_zone=contact.get("time_zone") or domain.COMPANY_TIME_ZONE,
            changed_at=utcnow(),
        )

    # positions -----------------------------------------------------------------------------

    async def publish_position(self, session: Session, company_id: str, body: PositionIn) -> Doc:
        company = await self.get_company(company_id, session)
        domain.check_company_can_publish(company)
        cohort = await self.get_cohort(body.cohort_id, session)
        lifecycle.check_can_publish_positions(cohort)
        open_now = await self.positions.count_documents(
            {"company_id": company_id, "state": "open"}, session=session
        )
        domain.check_open_positions(open_now)
        doc = {
            "_id": new_id("pos"),
            **body.model_dump(mode="json", exclude={"company_id"}),
            "company_id": company_id,
            "state": "open",
            "published_at": utcnow(),
        }
        await self.positions.insert_one(doc, session=session)
        await self.outbox.add(session, self._position_published(doc["_id"], company, body))
        return doc

    async def edit_position(self, session: Session, position: Doc, body: PositionIn) -> Doc:
        """Change an open position while its cohort takes positions (a draft, or its window
        open): no round has seen it yet. The same `position-published` event is published
        again for the same id; its consumers upsert by id."""
        company = await self.get_company(position["company_id"], session)
        domain.check_company_can_publish(company)
        cohort = await self.get_cohort(position["cohort_id"], session)
        lifecycle.check_can_edit_position(position, cohort, body.cohort_id)
        fields = body.model_dump(mode="json", exclude={"company_id", "cohort_id"})
        edited_at = utcnow()
        await self.positions.update_one(
            {"_id": position["_id"]}, {"$set": {**fields, "edited_at": edited_at}}, session=session
        )
        await self.outbox.add(session, self._position_published(position["_id"], company, body))
        return {**position, **fields, "edited_at": edited_at}

    @staticmethod
    def _position_published(position_id: str, company: Doc, body: PositionIn) -> PositionPublished:
        return PositionPublished(
            position_id=position_id,
            cohort_id=body.cohort_id,
            company_id=company["_id"],
            company_name_ja=company["name_ja"],
            company_name_en=company["name_en"],
            sector=company["sector"],
            track=body.track,
            title=body.title,
            capacity=body.capacity,
            required_skills=body.required_skills,
            min_jlpt=body.min_jlpt,
            min_english=body.min_english,
            paid=body.paid,
            start_date=body.start_date,
            end_date=body.end_date,
            location=body.location,
        )

    async def close_position(
        self,
        session: Session,
        position: Doc,
        reason: PositionClosedReason = PositionClosedReason.CLOSED,
    ) -> Doc:
        if position["state"] != "open":
            raise conflict(
                f"position {position['_id']!r} is already closed",
                extra={"current_state": "closed", "allowed": []},
            )
        closed_at = utcnow()
        await self.positions.update_one(
            {"_id": position["_id"]},
            {"$set": {"state": "closed", "closed_at": closed_at, "closed_reason": reason.value}},
            session=session,
        )
        await self.outbox.add(
            session,
            PositionClosed(
                position_id=position["_id"],
                cohort_id=position["cohort_id"],
                company_id=position["company_id"],
                closed_at=closed_at,
                reason=reason,
            ),
        )
        return {**position, "state": "closed", "closed_at": closed_at, "closed_reason": reason}

    async def get_position(self, position_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.positions, "position", position_id, session)

    async def list_positions(self, query: Doc) -> list[Doc]:
        return await self.positions.find(query).sort("_id", ASCENDING).to_list()

    # students ------------------------------------------------------------------------------

    async def upsert_student(self, session: Session, student_id: str, body: StudentIn) -> Doc:
        """Create or update the profile. Matching hears the new facts (student-profile-updated)
        before its next round; withdrawing consent also withdraws every application that can
        still be withdrawn (pending proposals are then cancelled)."""
        updated_at = utcnow()
        doc = {"_id": student_id, **body.model_dump(mode="json"), "updated_at": updated_at}
        await self.students.replace_one({"_id": student_id}, doc, upsert=True, session=session)
        contact = ContactRecord(
            party_id=student_id,
            party_type="student",
            name=body.name,
            email=body.email,
            preferred_language=body.preferred_language,
            time_zone=body.time_zone,
        )
        await self.outbox.add_contact(session, contact.key, contact)
        await self.outbox.add(
            session,
            StudentProfileUpdated(
                student_id=student_id,
                department=body.department,
                degree_program=body.degree_program,
                graduation_year=body.graduation_year,
                jlpt_level=body.jlpt_level,
                english_level=body.english_level,
                skills=body.skills,
                available_from=body.available_from,
                available_to=body.available_to,
                consent_to_data_use=body.consent_to_data_use,
                updated_at=updated_at,
            ),
        )
        withdrawn: list[str] = []
        if not body.consent_to_data_use:
            mine = self.applications.find({"student_id": student_id}, session=session)
            for application in lifecycle.withdrawn_by_consent(await mine.to_list()):
                await self._withdraw(session, application, reason="consent_withdrawn")
                withdrawn.append(application["_id"])
        return {**doc, "withdrawn_application_ids": withdrawn}

    async def get_student(self, student_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.students, "student", student_id, session)

    async def erase_student(self, session: Session, student_id: str) -> int:
        """APPI/PDPA erasure: withdraw active applications, delete the profile and its
        applications, and tombstone the contact so every other store forgets it too."""
        await self.get_student(student_id, session)
        mine = await self.applications.find({"student_id": student_id}, session=session).to_list()
        lifecycle.check_erasable(mine, student_id)
        for application in mine:
            if lifecycle.is_active(application):
                await self._withdraw(session, application, reason="erased")
        deleted = await self.applications.delete_many({"student_id": student_id}, session=session)
        await self.students.delete_one({"_id": student_id}, session=session)
        await self.rankings.update_many(
            {}, {"$pull": {"ranked_student_ids": student_id}}, session=session
        )
        await self.outbox.add_contact(session, contact_key("student", student_id), None)
        return deleted.deleted_count

    # applications --------------------------------------------------------------------------

    async def submit_application(
        self, session: Session, student_id: str, body: ApplicationIn
    ) -> Doc:
        student = await self.get_student(student_id, session)
        domain.check_consent(student)
        cohort = await self.get_cohort(body.cohort_id, session)
        domain.check_window(cohort, utcnow())
        existing = await self.applications.find_one(
            {
                "student_id": student_id,
                "cohort_id": body.cohort_id,
                "state": {"$ne": ApplicationState.WITHDRAWN.value},
            },
            session=session,
        )
        if existing:
            raise conflict(
                f"student already has application {existing['_id']!r} in this cohort; "
                "edit it with PUT /applications/{id} or withdraw it first",
                field="cohort_id",
            )
        return await self._create_application(session, student, body.cohort_id, body)

    async def edit_application(
        self, session: Session, application: Doc, body: ApplicationEdit
    ) -> tuple[Doc, Doc]:
        """An edit is a withdrawal plus a new submission (the public stream stays append-only)."""
        lifecycle.check_editable(application)
        cohort = await self.get_cohort(application["cohort_id"], session)
        domain.check_window(cohort, utcnow())
        student = await self.get_student(application["student_id"], session)
        domain.check_consent(student)
        new = await self._create_application(session, student, application["cohort_id"], body)
        withdrawn = await self._withdraw(
            session, application, reason="replaced", replaced_by=new["_id"]
        )
        return withdrawn, new

    async def withdraw_application(self, session: Session, application_id: str) -> Doc:
        """Withdraw at any time before a placement is confirmed (409 after it)."""
        application = await self.get_application(application_id, session)
        lifecycle.check_withdrawable(application)
        return await self._withdraw(session, application, reason="withdrawn")

    async def _create_application(
        self, session: Session, student: Doc, cohort_id: str, body: ApplicationEdit
    ) -> Doc:
        positions = {
            p["_id"]: p
            for p in await self.positions.find(
                {"_id": {"$in": body.ranked_position_ids}}, session=session
            ).to_list()
        }
        domain.check_ranked_positions(body.ranked_position_ids, positions, cohort_id)
        submitted_at = utcnow()
        doc = {
            "_id": new_id("app"),
            "student_id": student["_id"],
            "cohort_id": cohort_id,
            "ranked_position_ids": body.ranked_position_ids,
            "motivation": body.motivation,
            "state": ApplicationState.SUBMITTED.value,
            "submitted_at": submitted_at,
            "proposals": {},
            "not_matched": [],
        }
        await self.applications.insert_one(doc, session=session)
        await self.outbox.add(
            session,
            ApplicationSubmitted(
                application_id=doc["_id"],
                cohort_id=cohort_id,
                student_id=student["_id"],
                ranked_position_ids=body.ranked_position_ids,
                department=student["department"],
                degree_program=student["degree_program"],
                graduation_year=student["graduation_year"],
                jlpt_level=student.get("jlpt_level"),
                english_level=student.get("english_level"),
                skills=student.get("skills", []),
                available_from=student["available_from"],
                available_to=student["available_to"],
                consent_to_data_use=student["consent_to_data_use"],
                submitted_at=submitted_at,
            ),
        )
        return doc

    async def _withdraw(
        self, session: Session, application: Doc, *, reason: str, replaced_by: str | None = None
    ) -> Doc:
        withdrawn_at = utcnow()
        changes = {
            "state": ApplicationState.WITHDRAWN.value,
            "withdrawn_at": withdrawn_at,
            "withdrawn_reason": reason,
            "replaced_by": replaced_by,
            "proposal_id": None,
            "respond_by": None,
        }
        await self.applications.update_one(
            {"_id": application["_id"]}, {"$set": changes}, session=session
        )
        await self.outbox.add(
            session,
            ApplicationWithdrawn(
                application_id=application["_id"],
                cohort_id=application["cohort_id"],
                student_id=application["student_id"],
                reason=reason,
                replaced_by=replaced_by,
                withdrawn_at=withdrawn_at,
            ),
        )
        return {**application, **changes}

    async def get_application(self, application_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.applications, "application", application_id, session)

    async def list_applications(self, query: Doc) -> list[Doc]:
        return await self.applications.find(query).sort("submitted_at", ASCENDING).to_list()

    async def active_applicants(
        self, position_id: str, session: Session | None = None
    ) -> list[Doc]:
        return await self.applications.find(
            {"ranked_position_ids": position_id, "state": {"$ne": ApplicationState.WITHDRAWN}},
            session=session,
        ).to_list()

    # what matching reports -----------------------------------------------------------------

    async def find_application_for(
        self, session: Session, application_id: str | None, student_id: str, cohort_id: str
    ) -> Doc | None:
        """The application a proposal answers. Events from before `application_id` was on
        them name only the student and cohort: then their latest application there."""
        if application_id:
            return await self.applications.find_one({"_id": application_id}, session=session)
        return await self.applications.find_one(
            {
                "student_id": student_id,
                "cohort_id": cohort_id,
                "$or": [{"replaced_by": None}, {"replaced_by": {"$exists": False}}],
            },
            sort=[("submitted_at", -1)],
            session=session,
        )

    async def record_proposal_fact(self, session: Session, application: Doc, fact: Doc) -> Doc:
        """Fold one of matching's facts about a proposal into the application and re-derive
        its state. Facts arrive in any order; the result does not depend on it."""
        proposals = dict(application.get("proposals") or {})
        pid = fact["proposal_id"]
        proposals[pid] = lifecycle.merge_proposal(proposals.get(pid), fact)
        return await self._rederive(session, {**application, "proposals": proposals})

    async def record_not_matched(
        self, session: Session, application: Doc, round_id: str, at: Any
    ) -> Doc:
        marks = list(application.get("not_matched") or [])
        if any(m["round_id"] == round_id for m in marks):
            return application
        marks.append({"round_id": round_id, "at": at})
        return await self._rederive(session, {**application, "not_matched": marks})

    async def _rederive(self, session: Session, application: Doc) -> Doc:
        view = lifecycle.application_view(application)
        changes = {
            "proposals": application.get("proposals") or {},
            "not_matched": application.get("not_matched") or [],
            **view,
        }
        await self.applications.update_one(
            {"_id": application["_id"]}, {"$set": changes}, session=session
        )
        return {**application, **changes}

    # rankings ------------------------------------------------------------------------------

    async def rank_applicants(self, session: Session, position: Doc, body: RankingIn) -> Doc:
        if position["state"] != "open":
            raise conflict(f"position {position['_id']!r} is closed")
        applicants = {
            a["student_id"] for a in await self.active_applicants(position["_id"], session)
        }
        domain.check_ranking(body.ranked_student_ids, applicants)
        ranked_at = utcnow()
        doc = {
            "_id": position["_id"],
            "cohort_id": position["cohort_id"],
            "company_id": position["company_id"],
            "ranked_student_ids": body.ranked_student_ids,
            "ranked_at": ranked_at,
        }
        await self.rankings.replace_one({"_id": position["_id"]}, doc, upsert=True, session=session)
        await self.outbox.add(
            session,
            ApplicantsRanked(
                position_id=position["_id"],
                cohort_id=position["cohort_id"],
                company_id=position["company_id"],
                ranked_student_ids=body.ranked_student_ids,
                ranked_at=ranked_at,
            ),
        )
        return doc
