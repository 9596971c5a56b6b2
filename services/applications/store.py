"""The applications service's MongoDB database and its transactional writes.

Every write that changes state also writes its events to the outbox in the same transaction,
so either both happen or neither does.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.applications import domain
from services.applications.domain import (
    ApplicationEdit,
    ApplicationIn,
    CohortIn,
    CohortState,
    CompanyIn,
    CompanyStatus,
    PositionIn,
    RankingIn,
    StudentIn,
)
from shared.documents import find_or_404, utcnow
from shared.errors import DomainError, conflict
from shared.events import (
    ApplicantsRanked,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    ContactRecord,
    PositionClosed,
    PositionPublished,
)
from shared.events.contacts import contact_key
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

    # cohorts -------------------------------------------------------------------------------

    async def create_cohort(self, session: Session, body: CohortIn) -> Doc:
        if await self.cohorts.find_one({"_id": body.id}, session=session):
            raise conflict(f"cohort {body.id!r} already exists", field="id")
        doc = {
            "_id": body.id,
            "name": body.name,
            "application_opens": body.application_opens,
            "application_closes": body.application_closes,
            "state": CohortState.PLANNED.value,
            "created_at": utcnow(),
        }
        await self.cohorts.insert_one(doc, session=session)
        return doc

    async def set_cohort_state(self, session: Session, cohort_id: str, state: CohortState) -> Doc:
        cohort = await self.get_cohort(cohort_id, session)
        await self.cohorts.update_one(
            {"_id": cohort_id}, {"$set": {"state": state.value}}, session=session
        )
        return {**cohort, "state": state.value}

    async def get_cohort(self, cohort_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.cohorts, "cohort", cohort_id, session)

    # companies -----------------------------------------------------------------------------

    async def register_company(self, session: Session, body: CompanyIn) -> Doc:
        doc = {
            "_id": new_id("co"),
            **body.model_dump(mode="json", exclude={"contact"}),
            "contact": body.contact.model_dump(mode="json"),
            "status": CompanyStatus.PENDING.value,
            "registered_at": utcnow(),
        }
        await self.companies.insert_one(doc, session=session)
        contact = self._company_contact(doc)
        await self.outbox.add_contact(session, contact.key, contact)
        return doc

    async def decide_company(self, session: Session, company_id: str, status: CompanyStatus) -> Doc:
        company = await self.get_company(company_id, session)
        await self.companies.update_one(
            {"_id": company_id},
            {"$set": {"status": status.value, "decided_at": utcnow()}},
            session=session,
        )
        return {**company, "status": status.value}

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
        )

    # positions -----------------------------------------------------------------------------

    async def publish_position(self, session: Session, company_id: str, body: PositionIn) -> Doc:
        company = await self.get_company(company_id, session)
        domain.check_company_can_publish(company)
        cohort = await self.get_cohort(body.cohort_id, session)
        if cohort["state"] == CohortState.CLOSED:
            raise DomainError(f"cohort {body.cohort_id!r} is closed", field="cohort_id")
        doc = {
            "_id": new_id("pos"),
            **body.model_dump(mode="json", exclude={"company_id"}),
            "company_id": company_id,
            "state": "open",
            "published_at": utcnow(),
        }
        await self.positions.insert_one(doc, session=session)
        await self.outbox.add(
            session,
            PositionPublished(
                position_id=doc["_id"],
                cohort_id=body.cohort_id,
                company_id=company_id,
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
            ),
        )
        return doc

    async def close_position(self, session: Session, position: Doc) -> Doc:
        if position["state"] != "open":
            raise conflict(f"position {position['_id']!r} is already closed")
        closed_at = utcnow()
        await self.positions.update_one(
            {"_id": position["_id"]},
            {"$set": {"state": "closed", "closed_at": closed_at}},
            session=session,
        )
        await self.outbox.add(
            session,
            PositionClosed(
                position_id=position["_id"],
                cohort_id=position["cohort_id"],
                company_id=position["company_id"],
                closed_at=closed_at,
            ),
        )
        return {**position, "state": "closed", "closed_at": closed_at}

    async def get_position(self, position_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.positions, "position", position_id, session)

    async def list_positions(self, query: Doc) -> list[Doc]:
        return await self.positions.find(query).sort("_id", ASCENDING).to_list()

    # students ------------------------------------------------------------------------------

    async def upsert_student(self, session: Session, student_id: str, body: StudentIn) -> Doc:
        doc = {"_id": student_id, **body.model_dump(mode="json"), "updated_at": utcnow()}
        await self.students.replace_one({"_id": student_id}, doc, upsert=True, session=session)
        contact = ContactRecord(
            party_id=student_id,
            party_type="student",
            name=body.name,
            email=body.email,
            preferred_language=body.preferred_language,
        )
        await self.outbox.add_contact(session, contact.key, contact)
        return doc

    async def get_student(self, student_id: str, session: Session | None = None) -> Doc:
        return await find_or_404(self.students, "student", student_id, session)

    async def erase_student(self, session: Session, student_id: str) -> int:
        """APPI/PDPA erasure: withdraw active applications, delete the profile and its
        applications, and tombstone the contact so every other store forgets it too."""
        await self.get_student(student_id, session)
        active = await self.applications.find(
            {"student_id": student_id, "state": "submitted"}, session=session
        ).to_list()
        for application in active:
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
            {"student_id": student_id, "cohort_id": body.cohort_id, "state": "submitted"},
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
        self._check_active(application)
        cohort = await self.get_cohort(application["cohort_id"], session)
        domain.check_window(cohort, utcnow())
        student = await self.get_student(application["student_id"], session)
        domain.check_consent(student)
        new = await self._create_application(session, student, application["cohort_id"], body)
        withdrawn = await self._withdraw(
            session, application, reason="replaced", replaced_by=new["_id"]
        )
        return withdrawn, new

    async def withdraw_application(self, session: Session, application: Doc) -> Doc:
        self._check_active(application)
        cohort = await self.get_cohort(application["cohort_id"], session)
        domain.check_window(cohort, utcnow())
        return await self._withdraw(session, application, reason="withdrawn")

    @staticmethod
    def _check_active(application: Doc) -> None:
        if application["state"] != "submitted":
            raise conflict(f"application {application['_id']!r} is {application['state']}")

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
            "state": "submitted",
            "submitted_at": submitted_at,
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
        changes = {"state": "withdrawn", "withdrawn_at": withdrawn_at, "replaced_by": replaced_by}
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
            {"ranked_position_ids": position_id, "state": "submitted"}, session=session
        ).to_list()

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
