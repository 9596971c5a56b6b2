"""Kafka subscribers: public events become planned messages; the restricted contacts topic
keeps the private copy of names, addresses and languages (a tombstone erases a party)."""

from __future__ import annotations

from typing import Any

from services.notifications.fanout import Planner
from services.notifications.store import NotificationsStore
from shared.consumer import RejectEvent
from shared.events import (
    ApplicationsNotMatched,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CloudEvent,
    CompanyStatusChanged,
    ContactRecord,
    InternshipCompleted,
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
    ApplicationsNotMatched,
    ApplicationWithdrawn,
    MatchCancelled,
    PlacementCancelled,
    CompanyStatusChanged,
    InternshipCompleted,
)


def register(runtime: ServiceRuntime, store: NotificationsStore, planner: Planner) -> None:
    """Each notified topic is consumed a poll at a time (`Planner.apply`); an event whose
    messages could not be planned is dead-lettered and shown to the coordinators."""

    def planning(topic: str) -> Any:
        async def handle(events: list[CloudEvent[Any]], session: Session) -> None:
            await planner.apply(events, topic, session)

        return handle

    for model in NOTIFIED:
        runtime.consumes_batch(model.event_name, planning(model.event_name))

    notified = {model.event_name for model in NOTIFIED}

    async def not_planned(topic: str, value: bytes | None, reason: str) -> None:
        if topic in notified:
            await store.note_not_planned(topic, value, reason)

    runtime.consumer.on_dead_letter = not_planned

    async def position_published(event: CloudEvent[Any], session: Session) -> None:
        data: PositionPublished = event.data
        await store.upsert_position(
            session, data.position_id, data.model_dump(mode="json", exclude={"position_id"})
        )

    runtime.consumes(PositionPublished.event_name, position_published)

    async def contacts(items: list[tuple[str, ContactRecord | None]], session: Session) -> None:
        """One poll's contacts: runs of upserts as one bulk write, erasures in their place
        (order per key is kept: a later record or erasure of a party wins)."""
        upserts: list[ContactRecord] = []
        for key, record in items:
            # Keyed by role and id: a record can only ever replace the same party's contact.
            try:
                party_type, party_id = parse_contact_key(key)
            except ValueError as exc:
                raise RejectEvent(str(exc)) from exc
            if record is None:
                await store.upsert_contacts(session, upserts)
                upserts = []
                await store.erase(session, party_type, party_id)
                continue
            if record.key != key:
                raise RejectEvent(f"the contact of {record.key!r} was sent under the key {key!r}")
            upserts.append(record)
        await store.upsert_contacts(session, upserts)
        after_commit(
            session, planner.wake_sender
        )  # messages waiting for these addresses can go now

    runtime.consumes_contacts_batch(contacts)
