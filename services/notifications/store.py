"""The notifications service's MongoDB database: its private contacts copy, a cache of
position facts, erasure markers, and the message log keyed by (event id, recipient)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications.domain import Planned
from shared.documents import utcnow
from shared.events import CloudEvent, ContactRecord
from shared.events.contacts import contact_key
from shared.mongo import Session

Doc = dict[str, Any]


def message_key(event_id: str, recipient_id: str) -> str:
    return f"{event_id}:{recipient_id}"


class NotificationsStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.contacts = db["contacts"]
        self.erasures = db["erasures"]
        self.positions = db["positions"]
        self.messages = db["messages"]

    async def ensure_indexes(self) -> None:
        await self.messages.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self.messages.create_index([("cohort_id", ASCENDING), ("status", ASCENDING)])
        await self.messages.create_index("recipient_id")
        await self.messages.create_index("about")

    async def plan_messages(
        self, session: Session, event: CloudEvent[Any], topic: str, planned: list[Planned]
    ) -> int:
        """Record the messages an event calls for (idempotent: keyed by event and recipient)."""
        created = 0
        data = event.data.model_dump(mode="json")
        for p in planned:
            erased = await self.erasures.find_one(
                {"_id": contact_key(p.recipient_kind, p.recipient_id)}, session=session
            )
            result = await self.messages.update_one(
                {"_id": message_key(str(event.id), p.recipient_id)},
                {
                    "$setOnInsert": {
                        "event_id": str(event.id),
                        "event_type": event.type,
                        "topic": topic,
                        "event_json": event.model_dump_json(),
                        "data": data,
                        "cohort_id": data.get("cohort_id"),
                        "recipient_id": p.recipient_id,
                        "recipient_kind": p.recipient_kind,
                        "template": p.template,
                        "about": list(p.about),
                        "status": "suppressed" if erased else "pending",
                        "attempts": 0,
                        "next_attempt_at": utcnow(),
                        "created_at": utcnow(),
                        "last_error": "recipient erased" if erased else None,
                    }
                },
                upsert=True,
                session=session,
            )
            created += int(result.upserted_id is not None)
        return created

    async def upsert_position(self, session: Session, position_id: str, fields: Doc) -> None:
        await self.positions.update_one(
            {"_id": position_id}, {"$set": fields}, upsert=True, session=session
        )

    async def upsert_contact(self, session: Session, contact: ContactRecord) -> None:
        """Contacts are keyed by role and id (`student:stu-001`): one party's record can
        never replace another role's contact."""
        await self.contacts.replace_one(
            {"_id": contact.key},
            {"_id": contact.key, **contact.model_dump(mode="json")},
            upsert=True,
            session=session,
        )
        await self.erasures.delete_one({"_id": contact.key}, session=session)

    async def contact(self, kind: str, party_id: str) -> Doc | None:
        return await self.contacts.find_one({"_id": contact_key(kind, party_id)})

    async def is_erased(self, kind: str, party_id: str) -> bool:
        return await self.erasures.find_one({"_id": contact_key(kind, party_id)}) is not None

    async def erase(self, session: Session, party_type: str, party_id: str) -> None:
        """Forget a party: its contact, every stored body naming it, and future messages."""
        key = contact_key(party_type, party_id)
        await self.contacts.delete_one({"_id": key}, session=session)
        await self.erasures.replace_one(
            {"_id": key}, {"_id": key, "erased_at": utcnow()}, upsert=True, session=session
        )
        to_party = {"recipient_kind": party_type, "recipient_id": party_id}
        await self.messages.update_many(
            {"$or": [to_party, {"about": party_id}]},
            {"$set": {"subject": None, "body": None, "to": None, "erased": True}},
            session=session,
        )
        await self.messages.update_many(
            {**to_party, "status": {"$in": ["pending", "sending"]}},
            {"$set": {"status": "suppressed", "last_error": "recipient erased"}},
            session=session,
        )

    async def claim_due(self, lease_until: datetime) -> Doc | None:
        """Take the next due message. Its lease makes a crashed sender's message due again."""
        return await self.messages.find_one_and_update(
            {"status": {"$in": ["pending", "sending"]}, "next_attempt_at": {"$lte": utcnow()}},
            {"$set": {"status": "sending", "next_attempt_at": lease_until}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def update(self, message_id: str, fields: Doc, *, only_if_sending: bool = True) -> bool:
        query: Doc = {"_id": message_id}
        if only_if_sending:
            query["status"] = "sending"  # an erasure meanwhile wins
        result = await self.messages.update_one(query, {"$set": fields})
        return result.modified_count == 1
