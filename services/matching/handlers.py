"""Kafka subscribers: the matching service's read model of positions, applications and
rankings. Every handler is an upsert keyed by the aggregate id, so replaying a topic from
offset 0 rebuilds the same state, and events of different topics may arrive in any order."""

from __future__ import annotations

from typing import Any

from services.matching.store import MatchingStore
from shared.events import (
    ApplicantsRanked,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CloudEvent,
    PositionClosed,
    PositionPublished,
)
from shared.mongo import Session
from shared.runtime import ServiceRuntime


async def upsert_facts(
    collection: Any, key: str, fields: dict[str, Any], initial_state: str, session: Session
) -> None:
    """Set the facts of an aggregate; its state only when it is new, so that a close or a
    withdrawal that overtook the creation (it travels on another topic) is kept."""
    await collection.update_one(
        {"_id": key},
        {"$set": fields, "$setOnInsert": {"state": initial_state}},
        upsert=True,
        session=session,
    )


async def set_state(
    collection: Any, key: str, state: str, ids: dict[str, Any], session: Session
) -> None:
    """Set an aggregate's state, creating a stub (ids only) if its facts have not arrived."""
    await collection.update_one(
        {"_id": key}, {"$set": {"state": state, **ids}}, upsert=True, session=session
    )


def register(runtime: ServiceRuntime, store: MatchingStore) -> None:
    async def position_published(event: CloudEvent[Any], session: Session) -> None:
        data: PositionPublished = event.data
        fields = data.model_dump(mode="json", exclude={"position_id"})
        await upsert_facts(store.positions, data.position_id, fields, "open", session)

    async def position_closed(event: CloudEvent[Any], session: Session) -> None:
        data: PositionClosed = event.data
        ids = {"cohort_id": data.cohort_id, "company_id": data.company_id}
        await set_state(store.positions, data.position_id, "closed", ids, session)

    async def application_submitted(event: CloudEvent[Any], session: Session) -> None:
        data: ApplicationSubmitted = event.data
        fields = data.model_dump(mode="json", exclude={"application_id"})
        await upsert_facts(store.applications, data.application_id, fields, "active", session)

    async def application_withdrawn(event: CloudEvent[Any], session: Session) -> None:
        data: ApplicationWithdrawn = event.data
        ids = {
            "student_id": data.student_id,
            "cohort_id": data.cohort_id,
            "withdrawn_reason": data.reason,
        }
        await set_state(store.applications, data.application_id, "withdrawn", ids, session)

    async def applicants_ranked(event: CloudEvent[Any], session: Session) -> None:
        data: ApplicantsRanked = event.data
        current = await store.rankings.find_one({"_id": data.position_id}, session=session)
        if current is not None and current["ranked_at"] >= data.ranked_at:
            return  # an older ranking delivered late: the newer one stands
        await store.rankings.replace_one(
            {"_id": data.position_id},
            {
                "_id": data.position_id,
                "cohort_id": data.cohort_id,
                "company_id": data.company_id,
                "ranked_student_ids": data.ranked_student_ids,
                "ranked_at": data.ranked_at,
            },
            upsert=True,
            session=session,
        )

    runtime.consumes(PositionPublished.event_name, position_published)
    runtime.consumes(PositionClosed.event_name, position_closed)
    runtime.consumes(ApplicationSubmitted.event_name, application_submitted)
    runtime.consumes(ApplicationWithdrawn.event_name, application_withdrawn)
    runtime.consumes(ApplicantsRanked.event_name, applicants_ranked)
