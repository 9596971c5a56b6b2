"""HTTP API of the applications service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from services.applications import lifecycle
from services.applications.domain import (
    ApplicationEdit,
    ApplicationIn,
    CohortIn,
    CompanyIn,
    ContactIn,
    PositionIn,
    RankingIn,
    StudentIn,
    window_is_open,
)
from services.applications.store import ApplicationsStore, Doc
from shared.auth import Principal, Role, current_principal, require
from shared.bounds import CohortId, CompanyId, Id, StudentId
from shared.documents import to_response, utcnow
from shared.errors import DomainError, forbidden, not_found
from shared.events.vocabulary import CohortState, CompanyStatus
from shared.mongo import in_transaction

Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]
CompanyOrCoordinator = Annotated[Principal, Depends(require(Role.COMPANY, Role.COORDINATOR))]
StudentOrCoordinator = Annotated[Principal, Depends(require(Role.STUDENT, Role.COORDINATOR))]
Participant = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.COMPANY, Role.STUDENT))]
AnyPrincipal = Annotated[Principal, Depends(current_principal)]


def store_of(request: Request) -> ApplicationsStore:
    return request.app.state.store


Store = Annotated[ApplicationsStore, Depends(store_of)]


async def transact(store: ApplicationsStore, work: Any) -> Any:
    return await in_transaction(store.db.client, work)


cohorts = APIRouter(prefix="/cohorts", tags=["cohorts"])


def cohort_response(cohort: Doc, principal: Principal) -> dict[str, Any]:
    """A cohort with its lifecycle state, whether the window is open now, and what the
    coordinator can do next."""
    state = lifecycle.cohort_state(cohort)
    return {
        **to_response(cohort),
        "state": state.value,
        "window_open": window_is_open({**cohort, "state": state}, utcnow()),
        "allowed_actions": lifecycle.cohort_actions(state) if principal.is_coordinator else [],
    }


async def transition(
    store: ApplicationsStore, cohort_id: str, target: CohortState, principal: Principal
) -> dict[str, Any]:
    return cohort_response(
        await transact(store, lambda s: store.transition_cohort(s, cohort_id, target)), principal
    )


@cohorts.post("", status_code=status.HTTP_201_CREATED, summary="Create a cohort (a draft)")
async def create_cohort(body: CohortIn, principal: Coordinator, store: Store) -> dict[str, Any]:
    return cohort_response(await transact(store, lambda s: store.create_cohort(s, body)), principal)


@cohorts.get("")
async def list_cohorts(principal: AnyPrincipal, store: Store) -> list[dict[str, Any]]:
    docs = await store.cohorts.find().sort("_id").to_list()
    return [cohort_response(c, principal) for c in docs]


@cohorts.get("/{cohort_id}")
async def get_cohort(cohort_id: CohortId, principal: AnyPrincipal, store: Store) -> dict[str, Any]:
    return cohort_response(await store.get_cohort(cohort_id), principal)


@cohorts.post(
    "/{cohort_id}/open",
    summary="Open the application window (reopening is possible only before the first round)",
)
async def open_cohort(cohort_id: CohortId, principal: Coordinator, store: Store) -> dict[str, Any]:
    return await transition(store, cohort_id, CohortState.OPEN, principal)


@cohorts.post("/{cohort_id}/close", summary="Close the application window (rounds need it)")
async def close_cohort(cohort_id: CohortId, principal: Coordinator, store: Store) -> dict[str, Any]:
    return await transition(store, cohort_id, CohortState.CLOSED, principal)


@cohorts.post("/{cohort_id}/finish", summary="Finish matching: no further rounds")
async def finish_cohort(
    cohort_id: CohortId, principal: Coordinator, store: Store
) -> dict[str, Any]:
    return await transition(store, cohort_id, CohortState.FINISHED, principal)


# What a cohort report names about each applicant (the matching service assembles the report
# and asks here, with the reader's own token, whom the reader may see and under which name).
REPORTED_STUDENT_FIELDS = (
    "name",
    "university",
    "department",
    "degree_program",
    "graduation_year",
    "jlpt_level",
    "english_level",
)


def students_visible_to(principal: Principal) -> dict[str, Any]:
    """The coordinator sees every student; a university office only its own university's
    (its token names the university)."""
    if principal.role is not Role.UNIVERSITY:
        return {}
    if not principal.university:
        raise forbidden("this university office token names no university")
    return {"university": principal.university}


@cohorts.get(
    "/{cohort_id}/students",
    summary="The students who applied in a cohort: name, university, studies and each "
    "application's status (the coordinator: all; a university office: its own students)",
)
async def cohort_students(
    cohort_id: CohortId,
    principal: Annotated[Principal, Depends(require(Role.COORDINATOR, Role.UNIVERSITY))],
    store: Store,
) -> list[dict[str, Any]]:
    await store.get_cohort(cohort_id)
    mine = await store.list_applications({"cohort_id": cohort_id})
    students_ = await store.students.find(
        {"_id": {"$in": list({a["student_id"] for a in mine})}, **students_visible_to(principal)}
    ).to_list()
    applications_of: dict[str, list[dict[str, Any]]] = {}
    for a in mine:
        view = lifecycle.application_view(a)
        applications_of.setdefault(a["student_id"], []).append(
            {"id": a["_id"], "state": view["state"], "submitted_at": a["submitted_at"]}
        )
    return [
        {
            "id": s["_id"],
            **{k: s.get(k) for k in REPORTED_STUDENT_FIELDS},
            "applications": applications_of[s["_id"]],
        }
        for s in sorted(students_, key=lambda s: s["_id"])
    ]


companies = APIRouter(prefix="/companies", tags=["companies"])


@companies.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register as a host company (public call); the coordinator approves",
)
async def register_company(body: CompanyIn, store: Store) -> dict[str, Any]:
    return to_response(await transact(store, lambda s: store.register_company(s, body)))


def company_response(company: Doc, principal: Principal) -> dict[str, Any]:
    status_ = CompanyStatus(company["status"])
    actions = lifecycle.company_actions(status_) if principal.is_coordinator else []
    return {**to_response(company), "allowed_actions": actions}


@companies.get("")
async def list_companies(
    principal: CompanyOrCoordinator,
    store: Store,
    contact_email: Annotated[
        str | None,
        Query(
            max_length=254,
            description="Only the companies whose contact is this address (any case, any "
            "status): the portal's sign-in and its one-address-one-person checks.",
        ),
    ] = None,
) -> list[dict[str, Any]]:
    if contact_email is not None:
        found = await store.companies_by_address(contact_email)
        if not principal.is_coordinator:
            found = [c for c in found if c["_id"] == principal.sub]
        return [company_response(c, principal) for c in found]
    query = {} if principal.is_coordinator else {"_id": principal.sub}
    return [
        company_response(c, principal)
        for c in await store.companies.find(query).sort("_id").to_list()
    ]


DIRECTORY_FIELDS = ("name_ja", "name_en", "sector", "ward")


@companies.get("/directory", summary="Approved host companies: names and sector, no contact")
async def company_directory(_: AnyPrincipal, store: Store) -> list[dict[str, Any]]:
    approved = store.companies.find({"status": CompanyStatus.APPROVED.value})
    docs = await approved.sort("_id").to_list()
    return [{"id": c["_id"], **{k: c.get(k) for k in DIRECTORY_FIELDS}} for c in docs]


@companies.get("/{company_id}")
async def get_company(
    company_id: CompanyId, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    if not principal.is_coordinator and principal.sub != company_id:
        raise not_found("company", company_id)
    return company_response(await store.get_company(company_id), principal)


@companies.put(
    "/{company_id}/contact",
    summary="Change the contact person, their language and time zone (the company itself or "
    "the coordinator)",
)
async def change_contact(
    company_id: CompanyId, body: ContactIn, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    if not principal.is_coordinator and principal.sub != company_id:
        raise not_found("company", company_id)
    company = await transact(store, lambda s: store.change_contact(s, company_id, body))
    return company_response(company, principal)


async def decide(
    store: ApplicationsStore, company_id: CompanyId, status_: CompanyStatus, principal: Principal
) -> dict[str, Any]:
    company = await transact(store, lambda s: store.decide_company(s, company_id, status_))
    return company_response(company, principal)


@companies.post("/{company_id}/approve", summary="Approve: the company may publish positions")
async def approve_company(
    company_id: CompanyId, principal: Coordinator, store: Store
) -> dict[str, Any]:
    return await decide(store, company_id, CompanyStatus.APPROVED, principal)


@companies.post(
    "/{company_id}/reject",
    summary="Reject: closes its open positions and cancels their pending proposals",
)
async def reject_company(
    company_id: CompanyId, principal: Coordinator, store: Store
) -> dict[str, Any]:
    return await decide(store, company_id, CompanyStatus.REJECTED, principal)


@companies.post(
    "/{company_id}/suspend",
    summary="Suspend: closes its open positions and cancels their pending proposals",
)
async def suspend_company(
    company_id: CompanyId, principal: Coordinator, store: Store
) -> dict[str, Any]:
    return await decide(store, company_id, CompanyStatus.SUSPENDED, principal)


positions = APIRouter(prefix="/positions", tags=["positions"])


async def owned_position(position_id: str, principal: Principal, store: ApplicationsStore) -> Doc:
    """The position, if the caller is its company or the coordinator; else not found."""
    position = await store.get_position(position_id)
    if not principal.is_coordinator and position["company_id"] != principal.sub:
        raise not_found("position", position_id)
    return position


@positions.post("", status_code=status.HTTP_201_CREATED)
async def publish_position(
    body: PositionIn, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    if principal.is_coordinator:
        if not body.company_id:
            raise DomainError("a coordinator must name the company_id", field="company_id")
        company_id = body.company_id
    else:
        if body.company_id not in (None, principal.sub):
            raise not_found("company", str(body.company_id))
        company_id = principal.sub
    doc = await transact(store, lambda s: store.publish_position(s, company_id, body))
    return (await position_responses(store, [doc], principal))[0]


async def position_responses(
    store: ApplicationsStore, docs: list[Doc], principal: Principal
) -> list[dict[str, Any]]:
    """Positions with what the reader may do with each now: its company (and the
    coordinator) may edit an open position while the cohort takes positions, and close it."""
    cohort_ids = list({d["cohort_id"] for d in docs})
    states = {
        c["_id"]: lifecycle.cohort_state(c)
        for c in await store.cohorts.find({"_id": {"$in": cohort_ids}}).to_list()
    }
    out = []
    for doc in docs:
        mine = principal.is_coordinator or (
            principal.role is Role.COMPANY and doc["company_id"] == principal.sub
        )
        actions: list[str] = []
        if mine and doc["state"] == "open":
            if states.get(doc["cohort_id"]) in lifecycle.POSITION_PUBLISHING:
                actions.append("edit")
            actions.append("close")
        out.append({**to_response(doc), "allowed_actions": actions})
    return out


@positions.get("", summary="Positions: all for students and the coordinator, its own for a company")
async def list_positions(
    principal: Participant,
    store: Store,
    cohort_id: CohortId | None = None,
    company_id: Annotated[
        CompanyId | None, Query(description="The coordinator's filter (a company sees its own).")
    ] = None,
    state: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
) -> list[dict[str, Any]]:
    if principal.role is Role.COMPANY:
        if company_id not in (None, principal.sub):
            raise not_found("company", str(company_id))
        company_id = principal.sub
    elif principal.role is Role.STUDENT and company_id is not None:
        raise DomainError("only the coordinator filters positions by company", field="company_id")
    query = {
        k: v
        for k, v in {"cohort_id": cohort_id, "company_id": company_id, "state": state}.items()
        if v is not None
    }
    return await position_responses(store, await store.list_positions(query), principal)


@positions.get("/{position_id}")
async def get_position(position_id: Id, principal: Participant, store: Store) -> dict[str, Any]:
    position = await store.get_position(position_id)
    if principal.role is Role.COMPANY and position["company_id"] != principal.sub:
        raise not_found("position", position_id)
    return (await position_responses(store, [position], principal))[0]


@positions.put(
    "/{position_id}",
    summary="Change an open position while its cohort is a draft or open (its company or the "
    "coordinator); position-published is published again for the same id",
)
async def edit_position(
    position_id: Id, body: PositionIn, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    position = await owned_position(position_id, principal, store)
    if body.company_id not in (None, position["company_id"]):
        raise DomainError("a position stays with its company", field="company_id")
    doc = await transact(store, lambda s: store.edit_position(s, position, body))
    return (await position_responses(store, [doc], principal))[0]


@positions.post("/{position_id}/close")
async def close_position(
    position_id: Id, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    position = await owned_position(position_id, principal, store)
    doc = await transact(store, lambda s: store.close_position(s, position))
    return (await position_responses(store, [doc], principal))[0]


APPLICANT_FIELDS = (
    "name",
    "department",
    "degree_program",
    "graduation_year",
    "jlpt_level",
    "english_level",
    "skills",
    "available_from",
    "available_to",
)


@positions.get("/{position_id}/applicants", summary="Active applicants to one of your positions")
async def list_applicants(
    position_id: Id, principal: CompanyOrCoordinator, store: Store
) -> list[dict[str, Any]]:
    position = await owned_position(position_id, principal, store)
    applications = await store.active_applicants(position["_id"])
    students = {
        s["_id"]: s
        for s in await store.students.find(
            {"_id": {"$in": [a["student_id"] for a in applications]}}
        ).to_list()
    }
    result = []
    for application in applications:
        student = students.get(application["student_id"], {})
        result.append(
            {
                "application_id": application["_id"],
                "student_id": application["student_id"],
                "student_rank": application["ranked_position_ids"].index(position["_id"]) + 1,
                "motivation": application["motivation"],
                **{k: student.get(k) for k in APPLICANT_FIELDS},
            }
        )
    return result


@positions.get(
    "/{position_id}/applicants/{student_id}",
    summary="One student who applied to one of your positions (any application state)",
)
async def get_applicant(
    position_id: Id, student_id: StudentId, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    position = await owned_position(position_id, principal, store)
    application = await store.applications.find_one(
        {"student_id": student_id, "ranked_position_ids": position["_id"]},
        sort=[("submitted_at", -1)],
    )
    student = await store.students.find_one({"_id": student_id})
    if application is None or student is None:
        raise not_found("applicant", student_id)
    applicant = {
        "application_id": application["_id"],
        "student_id": student_id,
        "state": application["state"],
        "student_rank": application["ranked_position_ids"].index(position["_id"]) + 1,
        "motivation": application["motivation"],
        **{k: student.get(k) for k in APPLICANT_FIELDS},
    }
    # The host reaches its intern directly once the placement at this position is confirmed
    # (an applicant's address stays with the program until then).
    placed_here = (application.get("proposal") or {}).get("position_id") == position["_id"]
    if application["state"] == "placed" and placed_here:
        applicant["email"] = student.get("email")
    return applicant


@positions.get("/{position_id}/ranking", summary="The current ranking of one of your positions")
async def get_ranking(
    position_id: Id, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    position = await owned_position(position_id, principal, store)
    ranking = await store.rankings.find_one({"_id": position["_id"]})
    if ranking is None:
        return {"id": position["_id"], "ranked_student_ids": [], "ranked_at": None}
    return to_response(ranking)


@positions.put("/{position_id}/ranking", summary="Rank the applicants to one of your positions")
async def rank_applicants(
    position_id: Id, body: RankingIn, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    position = await owned_position(position_id, principal, store)
    return to_response(await transact(store, lambda s: store.rank_applicants(s, position, body)))


students = APIRouter(prefix="/students", tags=["students"])


def check_self(principal: Principal, student_id: str) -> None:
    """A student reaches only their own profile; anyone else's does not exist for them."""
    if not principal.is_coordinator and principal.sub != student_id:
        raise not_found("student", student_id)


UNIVERSITY_FIELDS = (
    "name",
    "email",
    "university",
    "department",
    "degree_program",
    "graduation_year",
    "jlpt_level",
    "preferred_language",
    "consent_to_data_use",
)


def university_scope(principal: Principal) -> dict[str, Any]:
    """A university office sees only its own university's students (its token names the
    university); the coordinator sees everyone."""
    if principal.role is not Role.UNIVERSITY:
        return {}
    # A token that names no university sees no one (a filter nothing matches).
    return {"university": principal.university or {"$in": []}}


@students.get(
    "",
    summary="Students and their applications (the coordinator: all; a university office: "
    "its own university's)",
)
async def list_students(
    principal: Annotated[Principal, Depends(require(Role.COORDINATOR, Role.UNIVERSITY))],
    store: Store,
) -> list[dict[str, Any]]:
    found = await store.students.find(university_scope(principal)).sort("_id").to_list()
    ids = [s["_id"] for s in found]
    applications: dict[str, list[dict[str, Any]]] = {}
    views = await application_responses(
        store, await store.list_applications({"student_id": {"$in": ids}}), principal
    )
    matches = await match_details(store, views)
    for a in views:
        if a.get("replaced_by"):
            continue  # an edit: the application that replaced it stands for both
        applications.setdefault(a["student_id"], []).append(
            {
                **{k: a.get(k) for k in ("id", "cohort_id", "state", "submitted_at", "respond_by")},
                "match": matches.get(a["id"]),
            }
        )
    return [
        {
            "id": s["_id"],
            **{k: s.get(k) for k in UNIVERSITY_FIELDS},
            "applications": applications.get(s["_id"], []),
        }
        for s in found
    ]


# Where a student is proposed or placed, for their university's office: it signs the
# internship agreement with the host company, so it needs the company's contact (only for the
# companies its students are proposed to or placed with; the list is scoped to its students).
MATCHED_STATES = ("proposed", "placed")


async def match_details(store: ApplicationsStore, views: list[Doc]) -> dict[str, Doc]:
    """Application id -> the position, dates, residence status and host company (with its
    contact) of its current proposal or placement, for applications proposed or placed."""
    current = {
        a["id"]: a["proposal"]
        for a in views
        if a["state"] in MATCHED_STATES and (a.get("proposal") or {}).get("position_id")
    }
    positions = {
        p["_id"]: p
        for p in await store.positions.find(
            {"_id": {"$in": list({p["position_id"] for p in current.values()})}}
        ).to_list()
    }
    companies = {
        c["_id"]: c
        for c in await store.companies.find(
            {"_id": {"$in": list({p["company_id"] for p in positions.values()})}}
        ).to_list()
    }
    details: dict[str, Doc] = {}
    for application_id, proposal in current.items():
        position = positions.get(proposal["position_id"])
        if position is None:
            continue
        company = companies.get(position["company_id"]) or {}
        contact = company.get("contact") or {}
        details[application_id] = {
            "proposal_id": proposal.get("proposal_id"),
            "placement_id": proposal.get("placement_id"),
            "position_id": position["_id"],
            "title": position["title"],
            "start_date": position["start_date"],
            "end_date": position["end_date"],
            "location": position.get("location"),
            "paid": position["paid"],
            # As matching stated it on the proposal (guidance; the immigration office decides).
            "residence_status": proposal.get("residence_status"),
            "company": {
                "id": position["company_id"],
                "name_ja": company.get("name_ja"),
                "name_en": company.get("name_en"),
                "contact": {"name": contact.get("name"), "email": contact.get("email")},
            },
        }
    return details


@students.put(
    "/{student_id}",
    summary="Create or update a student profile (consent_to_data_use=false withdraws the "
    "applications that can still be withdrawn)",
)
async def upsert_student(
    student_id: StudentId, body: StudentIn, principal: StudentOrCoordinator, store: Store
) -> dict[str, Any]:
    check_self(principal, student_id)
    return to_response(await transact(store, lambda s: store.upsert_student(s, student_id, body)))


@students.get(
    "/{student_id}",
    summary="A student's profile: the student, the coordinator, or their university's office",
)
async def get_student(
    student_id: StudentId,
    principal: Annotated[
        Principal, Depends(require(Role.STUDENT, Role.COORDINATOR, Role.UNIVERSITY))
    ],
    store: Store,
) -> dict[str, Any]:
    if principal.role is Role.UNIVERSITY:
        student = await store.students.find_one({"_id": student_id, **university_scope(principal)})
        if student is None:
            raise not_found("student", student_id)  # not theirs: as if it did not exist
        return to_response(student)
    check_self(principal, student_id)
    return to_response(await store.get_student(student_id))


@students.delete(
    "/{student_id}",
    summary="Erase a student (APPI/PDPA): profile, applications, contact; 409 while a "
    "placement is confirmed",
)
async def erase_student(
    student_id: StudentId, principal: StudentOrCoordinator, store: Store
) -> dict[str, Any]:
    check_self(principal, student_id)
    deleted = await transact(store, lambda s: store.erase_student(s, student_id))
    return {"id": student_id, "erased": True, "applications_deleted": deleted}


applications = APIRouter(prefix="/applications", tags=["applications"])


async def readable_application(
    application_id: str, principal: Principal, store: ApplicationsStore
) -> Doc:
    """Students see their own, the coordinator all; anything else is reported as not found,
    so ids cannot be probed. A company never reads an application: it sees its applicants,
    with their rank of its position and their motivation, at /positions/{id}/applicants (a
    student's other choices are not its business)."""
    application = await store.get_application(application_id)
    if principal.is_coordinator:
        return application
    if principal.role is Role.STUDENT and application["student_id"] == principal.sub:
        return application
    raise not_found("application", application_id)


@applications.post("", status_code=status.HTTP_201_CREATED)
async def submit_application(
    body: ApplicationIn,
    principal: Annotated[Principal, Depends(require(Role.STUDENT))],
    store: Store,
) -> dict[str, Any]:
    doc = await transact(store, lambda s: store.submit_application(s, principal.sub, body))
    return (await application_responses(store, [doc], principal))[0]


async def application_responses(
    store: ApplicationsStore, docs: list[Doc], principal: Principal
) -> list[dict[str, Any]]:
    """Applications with their one status, the current proposal (id, deadline, answers) and
    what the student may do now (only the student and the coordinator read applications)."""
    cohorts_ = {
        c["_id"]: c
        for c in await store.cohorts.find(
            {"_id": {"$in": list({d["cohort_id"] for d in docs})}}
        ).to_list()
    }
    now = utcnow()
    out = []
    for doc in docs:
        cohort = cohorts_.get(doc["cohort_id"])
        window = cohort is not None and window_is_open(
            {**cohort, "state": lifecycle.cohort_state(cohort)}, now
        )
        view = {**doc, **lifecycle.application_view(doc)}
        response = to_response(view, hide=("proposals", "not_matched"))
        response["allowed_actions"] = (
            lifecycle.student_actions(view, window) if principal.sub == doc["student_id"] else []
        )
        out.append(response)
    return out


@applications.get("", summary="Applications with their status and current proposal")
async def list_applications(
    principal: StudentOrCoordinator, store: Store, cohort_id: CohortId | None = None
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {} if principal.is_coordinator else {"student_id": principal.sub}
    if cohort_id:
        query["cohort_id"] = cohort_id
    return await application_responses(store, await store.list_applications(query), principal)


@applications.get("/{application_id}")
async def get_application(
    application_id: Id, principal: StudentOrCoordinator, store: Store
) -> dict[str, Any]:
    doc = await readable_application(application_id, principal, store)
    return (await application_responses(store, [doc], principal))[0]


async def own_application(
    application_id: str, principal: Principal, store: ApplicationsStore
) -> Doc:
    application = await readable_application(application_id, principal, store)
    if application["student_id"] != principal.sub:
        raise not_found("application", application_id)
    return application


@applications.put(
    "/{application_id}", summary="Edit: withdraws this application, submits a new one"
)
async def edit_application(
    application_id: Id,
    body: ApplicationEdit,
    principal: Annotated[Principal, Depends(require(Role.STUDENT))],
    store: Store,
) -> dict[str, Any]:
    application = await own_application(application_id, principal, store)
    _withdrawn, new = await transact(store, lambda s: store.edit_application(s, application, body))
    return (await application_responses(store, [new], principal))[0]


@applications.delete(
    "/{application_id}",
    summary="Withdraw (any time before a placement is confirmed; a pending proposal is "
    "cancelled); 409 after confirmation",
)
async def withdraw_application(
    application_id: Id,
    principal: Annotated[Principal, Depends(require(Role.STUDENT))],
    store: Store,
) -> dict[str, Any]:
    await own_application(application_id, principal, store)
    doc = await transact(store, lambda s: store.withdraw_application(s, application_id))
    return (await application_responses(store, [doc], principal))[0]


ROUTERS = [cohorts, companies, positions, students, applications]
