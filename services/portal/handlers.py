"""Kafka subscribers: what the services decide about people ends their portal sessions.

The applications service owns companies and students; the portal learns by event when rights
end there, however the change was made (on the portal, or by a program with a bearer token):
a rejected or suspended company, a company contact that changed, an erased student. Each
handler only deletes, and only what began before the change, so a replay from offset 0 ends
nothing that began since."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.portal.domain import COMPANY_RIGHTS_END, PortalRole, normalise_email
from services.portal.store import PortalStore
from shared.consumer import RejectEvent
from shared.events import CloudEvent, CompanyStatusChanged, ContactRecord
from shared.events.contacts import parse_contact_key
from shared.mongo import Session
from shared.runtime import ServiceRuntime


def register(runtime: ServiceRuntime, store: PortalStore) -> None:
    async def company_status_changed(event: CloudEvent[Any], session: Session) -> None:
        """A rejected or suspended company's sessions end."""
        data: CompanyStatusChanged = event.data
        if data.status.value in COMPANY_RIGHTS_END:
            await store.end_sessions(
                PortalRole.COMPANY, data.company_id, before=data.changed_at, session=session
            )

    runtime.consumes(CompanyStatusChanged.event_name, company_status_changed)

    async def contacts(items: list[tuple[str, ContactRecord | None]], session: Session) -> None:
        """A company's new contact address ends the previous contact's sessions; a student's
        erasure (a tombstone) forgets them on the portal too."""
        for key, record in items:
            try:
                party_type, party_id = parse_contact_key(key)
            except ValueError as exc:
                raise RejectEvent(str(exc)) from exc
            if party_type == "student" and record is None:
                await store.forget(PortalRole.STUDENT, party_id, session=session)
            elif party_type == "company" and record is not None:
                await end_other_contacts(store, party_id, record, session)

    runtime.consumes_contacts_batch(contacts)


async def end_other_contacts(
    store: PortalStore, company_id: str, record: ContactRecord, session: Session
) -> None:
    address = normalise_email(str(record.email)) or str(record.email).lower()
    before: datetime | None = record.changed_at
    await store.end_sessions(
        PortalRole.COMPANY, company_id, unless_email=address, before=before, session=session
    )
