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
    PositionIn,
    RankingIn,
    StudentIn,
    window_is_open,
)
from services.applications.store import ApplicationsStore, Doc
from shared.auth import Principal, Role, current_principal, require
from shared.bounds import CohortId, CompanyId, Id, StudentId
from shared.documents import to_response, utcnow
from shared.errors import DomainError, not_found
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
async def list_companies(principal: CompanyOrCoordinator, store: Store) -> list[dict[str, Any]]:
    query = {} if principal.is_coordinator else {"_id": principal.sub}
    return [
        company_response(c, principal)
        for c in await store.companies.find(query).sort("_id").to_list()
    ]


@companies.get("/{company_id}")
async def get_company(
    company_id: CompanyId, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    if not principal.is_coordinator and principal.sub != company_id:
        raise not_found("company", company_id)
    return company_response(await store.get_company(company_id), principal)


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
    return to_response(await transact(store, lambda s: store.publish_position(s, company_id, body)))


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
    return [to_response(p) for p in await store.list_positions(query)]


@positions.get("/{position_id}")
async def get_position(position_id: Id, principal: Participant, store: Store) -> dict[str, Any]:
    position = await store.get_position(position_id)
    if principal.role is Role.COMPANY and position["company_id"] != principal.sub:
        raise not_found("position", position_id)
    return to_response(position)


@positions.post("/{position_id}/close")
async def close_position(
    position_id: Id, principal: CompanyOrCoordinator, store: Store
) -> dict[str, Any]:
    position = await owned_position(position_id, principal, store)
    return to_response(await transact(store, lambda s: store.close_position(s, position)))


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
                **{
                    k: student.get(k)
                    for k in (
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
                },
            }
        )
    return result


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


@students.get("/{student_id}")
async def get_student(
    student_id: StudentId, principal: StudentOrCoordinator, store: Store
) -> dict[str, Any]:
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
