"""HTTP API of the notifications service: the coordinator's view of deliveries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.notifications.store import NotificationsStore
from shared.auth import Principal, Role, require
from shared.bounds import CohortId, Id
from shared.documents import to_response
from shared.errors import conflict, not_found

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


ROUTERS = [deliveries]
