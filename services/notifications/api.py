"""HTTP API of the notifications service: the coordinator's view of deliveries, and the
coordinators' own choices of the program mails they receive (the portal's preferences page)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, EmailStr

from services.notifications.domain import COORDINATOR, NOT_PLANNED_TEMPLATE
from services.notifications.fanout import Planner
from services.notifications.store import NotificationsStore
from shared.auth import Principal, Role, require
from shared.bounds import CohortId, Id, Name
from shared.documents import to_response
from shared.errors import DomainError, conflict, not_found
from shared.events import parse_event
from shared.events.timezones import TimeZoneName
from shared.events.vocabulary import Language
from shared.mongo import Session, in_transaction

Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR))]


def store_of(request: Request) -> NotificationsStore:
    return request.app.state.store  # type: ignore[no-any-return]


Store = Annotated[NotificationsStore, Depends(store_of)]

LIST_FIELDS = {
    "event_id": 1,
    "event_type": 1,
    "cohort_id": 1,
    "recipient_id": 1,
    "recipient_kind": 1,
    "template": 1,
    "kind": 1,
    "language": 1,
    "to": 1,
    "subject": 1,
    "status": 1,
    "attempts": 1,
    "last_error": 1,
    "created_at": 1,
    "next_attempt_at": 1,
    "sent_at": 1,
    "failed_at": 1,
}

deliveries = APIRouter(prefix="/deliveries", tags=["deliveries"])


@deliveries.get("", summary="Messages of a cohort, newest first")
async def list_deliveries(
    _: Coordinator,
    store: Store,
    cohort_id: CohortId | None = None,
    status: Annotated[
        str | None, Query(pattern="^(pending|sending|sent|failed|suppressed)$")
    ] = None,
    recipient_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    query = {
        k: v
        for k, v in {"cohort_id": cohort_id, "status": status, "recipient_id": recipient_id}.items()
        if v is not None
    }
    docs = (
        await store.messages.find(query, LIST_FIELDS).sort("created_at", -1).limit(limit).to_list()
    )
    return [to_response(d) for d in docs]


@deliveries.get("/failures", summary="Failed deliveries of a cohort, with their errors")
async def list_failures(
    _: Coordinator, store: Store, cohort_id: CohortId | None = None
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"status": "failed"}
    if cohort_id:
        query["cohort_id"] = cohort_id
    docs = await store.messages.find(query, LIST_FIELDS).sort("created_at", -1).to_list()
    return [to_response(d) for d in docs]


@deliveries.get("/{message_id}", summary="One message, with its body")
async def get_delivery(message_id: Id, _: Coordinator, store: Store) -> dict[str, Any]:
    doc = await store.messages.find_one({"_id": message_id}, {"event_json": 0})
    if doc is None:
        raise not_found("message", message_id)
    return to_response(doc)


@deliveries.post("/{message_id}/retry", summary="Send a failed message again")
async def retry_delivery(
    message_id: Id, _: Coordinator, store: Store, request: Request
) -> dict[str, Any]:
    entry = await store.messages.find_one(
        {"_id": message_id}, {"template": 1, "status": 1, "event_id": 1}
    )
    if entry is not None and entry["template"] == NOT_PLANNED_TEMPLATE:
        return await plan_again(message_id, entry, store, request.app.state.planner)
    doc = await store.messages.find_one_and_update(
        {"_id": message_id, "status": "failed"},
        {
            "$set": {
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": datetime.now(UTC),
                "last_error": None,  # a fresh start; the log keeps why it failed before
            }
        },
    )
    if doc is None:
        if await store.messages.find_one({"_id": message_id}) is None:
            raise not_found("message", message_id)
        raise conflict("only a failed message can be retried")
    request.app.state.deliverer.wake()
    return {"id": message_id, "status": "pending"}


async def plan_again(
    message_id: str, entry: dict[str, Any], store: NotificationsStore, planner: Planner
) -> dict[str, Any]:
    """Plan a dead-lettered event's messages again (after its cause was fixed): the entry
    that stood for them goes, and the messages appear in its place."""
    if entry["status"] != "failed":
        raise conflict("only a failed message can be retried")
    stored = await store.stored_event(entry["event_id"])
    try:
        event = parse_event(stored["event_json"]) if stored else None
    except ValueError as exc:
        raise conflict(f"the event cannot be read: {exc}") from exc
    if event is None or stored is None:
        raise conflict("the event of this entry is not stored")

    async def replan(session: Session) -> int:
        created = await planner.apply([event], stored["topic"], session)
        await store.messages.delete_one({"_id": message_id, "status": "failed"}, session=session)
        return created

    created = await in_transaction(store.db.client, replan)
    return {"id": message_id, "status": "planned", "created": created}


recipients = APIRouter(prefix="/recipients", tags=["recipients"])


class Subscriptions(BaseModel):
    """The program mails a coordinator receives (each on unless turned off)."""

    model_config = ConfigDict(extra="forbid")

    round_summary: bool = True  # each match round's summary
    placements: bool = True  # each placement confirmed or cancelled
    delivery_failures: bool = True  # mails that could not be sent, one digest per period


class CoordinatorRecipientIn(BaseModel):
    """Where and how a coordinator receives the program's mails. Omitted fields keep their
    value (a new coordinator: Japanese, Japan time, every mail)."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: Name | None = None
    preferred_language: Language | None = None
    time_zone: TimeZoneName | None = None
    subscriptions: Subscriptions | None = None


RECIPIENT_FIELDS = ("email", "name", "preferred_language", "time_zone", "subscriptions")


def own(principal: Principal, sub: str) -> None:
    """A coordinator reads and sets their own choices only (another's: not found)."""
    if principal.sub != sub:
        raise not_found("coordinator recipient", sub)
    if sub == COORDINATOR:  # the message log's recipient id of COORDINATOR_EMAIL
        raise DomainError(
            f"{COORDINATOR!r} names the program address (COORDINATOR_EMAIL), not a person: "
            "call with the token of a coordinator the portal knows",
            field="sub",
        )


def recipient_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["party_id"],
        **{k: doc.get(k) for k in RECIPIENT_FIELDS},
    }


@recipients.put(
    "/coordinators/{sub}",
    summary="Register a coordinator for the program's mails, or change their choices",
)
async def put_coordinator(
    sub: Id, body: CoordinatorRecipientIn, principal: Coordinator, store: Store
) -> dict[str, Any]:
    own(principal, sub)
    fields = body.model_dump(mode="json", exclude_none=True)
    # The name in the mails' To line; the address itself when none is given.
    if "name" not in fields and await store.coordinator(sub) is None:
        fields["name"] = body.email.split("@")[0]
    return recipient_view(await store.put_coordinator(sub, fields))


@recipients.get("/coordinators/{sub}", summary="A coordinator's own mail choices")
async def get_coordinator(sub: Id, principal: Coordinator, store: Store) -> dict[str, Any]:
    own(principal, sub)
    doc = await store.coordinator(sub)
    if doc is None:
        raise not_found("coordinator recipient", sub)
    return recipient_view(doc)


@recipients.delete(
    "/coordinators/{sub}", summary="Stop every mail to a coordinator (removed by the operator)"
)
async def delete_coordinator(sub: Id, principal: Coordinator, store: Store) -> dict[str, Any]:
    own(principal, sub)
    if not await store.remove_coordinator(sub):
        raise not_found("coordinator recipient", sub)
    return {"id": sub, "removed": True}


ROUTERS = [deliveries, recipients]
