"""Kafka subscribers: the matching service's read model of cohorts, positions, applications,
student profiles and rankings, and the cancellations that follow when the ground of a pending
proposal goes away (a position closed, an application withdrawn, consent withdrawn).

Every read-model handler is an upsert keyed by the aggregate id, so replaying a topic from
offset 0 rebuilds the same state, and events of different topics may arrive in any order.
One writer per document: each collection of the read model is written by the handler of the
topic keyed by its documents' id (applications by application-submitted/-withdrawn, student
profiles by student-profile-updated), so concurrent partitions do not conflict on them.
Cancelling only touches pending proposals, so a replay cancels nothing twice."""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne

from services.matching.store import PROFILE_FIELDS, MatchingStore
from shared.events import (
    ApplicantsRanked,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CloudEvent,
    CohortStateChanged,
    PositionClosed,
    PositionPublished,
    StudentProfileUpdated,
)
from shared.events.vocabulary import MatchCancelReason
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
        await store.position_closed(session, data.position_id, data.reason, data.closed_at)

    async def applications_submitted(events: list[CloudEvent[Any]], session: Session) -> None:
        """The busiest topic, so a poll's submissions are written at once: one bulk write of
        upserts (as `upsert_facts`). The profile copy each carries stays in its application's
        document: the student's own document is written by `student-profile-updated` alone
        (keyed by student, another partition), and a round takes the newer of the two. Two
        partitions writing one student's document conflicted on every busy intake."""
        await store.applications.bulk_write(
            [
                UpdateOne(
                    {"_id": event.data.application_id},
                    {
                        "$set": event.data.model_dump(mode="json", exclude={"application_id"}),
                        "$setOnInsert": {"state": "active"},
                    },
                    upsert=True,
                )
                for event in events
            ],
            ordered=True,
            session=session,
        )

    async def application_withdrawn(event: CloudEvent[Any], session: Session) -> None:
        data: ApplicationWithdrawn = event.data
        ids = {
            "student_id": data.student_id,
            "cohort_id": data.cohort_id,
            "withdrawn_reason": data.reason,
        }
        await set_state(store.applications, data.application_id, "withdrawn", ids, session)
        await store.application_withdrawn(
            session, data.application_id, data.reason, data.withdrawn_at
        )

    async def profile_updated(event: CloudEvent[Any], session: Session) -> None:
        data: StudentProfileUpdated = event.data
        facts = data.model_dump(mode="json", include=set(PROFILE_FIELDS))
        await store.profile_changed(session, data.student_id, facts, data.updated_at)
        if not data.consent_to_data_use:
            # Whichever arrives first, this or the withdrawal of the applications, cancels.
            await store.cancel_pending(
                session,
                {"student_id": data.student_id},
                MatchCancelReason.CONSENT_WITHDRAWN,
                data.updated_at,
            )

    async def cohort_state_changed(event: CloudEvent[Any], session: Session) -> None:
        data: CohortStateChanged = event.data
        await store.cohort_changed(
            session,
            data.cohort_id,
            {
                "state": data.to_state.value,
                "application_opens": data.application_opens,
                "application_closes": data.application_closes,
                "changed_at": data.changed_at,
            },
        )

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
    runtime.consumes_batch(ApplicationSubmitted.event_name, applications_submitted)
    runtime.consumes(ApplicationWithdrawn.event_name, application_withdrawn)
    runtime.consumes(ApplicantsRanked.event_name, applicants_ranked)
    runtime.consumes(StudentProfileUpdated.event_name, profile_updated)
    runtime.consumes(CohortStateChanged.event_name, cohort_state_changed)
