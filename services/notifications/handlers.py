"""Kafka subscribers: public events become planned messages; the restricted contacts topic
keeps the private copy of names, addresses and languages (a tombstone erases a party)."""

from __future__ import annotations

from typing import Any

from services.notifications.domain import COORDINATOR, plan, to_coordinators
from services.notifications.store import NotificationsStore
from shared.consumer import RejectEvent
from shared.events import (
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
    ApplicationWithdrawn,
    MatchCancelled,
    PlacementCancelled,
    CompanyStatusChanged,
    InternshipCompleted,
)


def register(
    runtime: ServiceRuntime, store: NotificationsStore, wake: Any, *, program_address: bool
) -> None:
    """`program_address`: COORDINATOR_EMAIL is a real address and gets the program mails
    too, besides the coordinators who subscribed to them."""

    def planner(topic: str) -> Any:
        async def handle(event: CloudEvent[Any], session: Session) -> None:
            await store.record_facts(session, event)
            messages = plan(event)
            if any(p.recipient_id == COORDINATOR for p in messages):
                subscribers = await store.coordinator_subscribers(session)
                messages = to_coordinators(messages, subscribers, program_address=program_address)
            planned = await store.plan_messages(session, event, topic, messages)
            await store.suppress_reminders_already_answered(session, event)
            if planned:
                after_commit(session, wake)  # woken before the commit it would find nothing

        return handle

    for model in NOTIFIED:
        runtime.consumes(model.event_name, planner(model.event_name))

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
        after_commit(session, wake)  # messages waiting for these addresses can go now

    runtime.consumes_contacts_batch(contacts)
