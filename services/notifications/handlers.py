"""Kafka subscribers: public events become planned messages; the restricted contacts topic
keeps the private copy of names, addresses and languages (a tombstone erases a party)."""

from __future__ import annotations

from typing import Any

from services.notifications.domain import plan
from services.notifications.store import NotificationsStore
from shared.consumer import RejectEvent
from shared.events import (
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CloudEvent,
    CompanyStatusChanged,
    ContactRecord,
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementCancelled,
    PlacementConfirmed,
    PositionPublished,
    RoundCompleted,
)
from shared.events.contacts import parse_contact_key
from shared.mongo import Session, after_commit
from shared.runtime import ServiceRuntime

NOTIFIED = (
    ApplicationSubmitted,
    MatchProposed,
    MatchAccepted,
    MatchDeclined,
    MatchExpired,
    PlacementConfirmed,
    RoundCompleted,
    ApplicationWithdrawn,
    MatchCancelled,
    PlacementCancelled,
    CompanyStatusChanged,
)


def register(runtime: ServiceRuntime, store: NotificationsStore, wake: Any) -> None:
    def planner(topic: str) -> Any:
        async def handle(event: CloudEvent[Any], session: Session) -> None:
            await store.record_facts(session, event)
            if await store.plan_messages(session, event, topic, plan(event)):
                after_commit(session, wake)  # before it, the sender would find nothing

        return handle

    for model in NOTIFIED:
        runtime.consumes(model.event_name, planner(model.event_name))

    async def position_published(event: CloudEvent[Any], session: Session) -> None:
        data: PositionPublished = event.data
        await store.upsert_position(
            session, data.position_id, data.model_dump(mode="json", exclude={"position_id"})
        )

    runtime.consumes(PositionPublished.event_name, position_published)

    async def contact(key: str, record: ContactRecord | None, session: Session) -> None:
        # Keyed by role and id: a record can only ever replace the same party's contact.
        try:
            party_type, party_id = parse_contact_key(key)
        except ValueError as exc:
            raise RejectEvent(str(exc)) from exc
        if record is None:
            await store.erase(session, party_type, party_id)
            return
        if record.key != key:
            raise RejectEvent(f"the contact of {record.key!r} was sent under the key {key!r}")
        await store.upsert_contact(session, record)
        after_commit(session, wake)  # messages waiting for this address can go now

    runtime.consumes_contacts(contact)
