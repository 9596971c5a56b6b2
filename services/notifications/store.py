"""The notifications service's MongoDB database: its private contacts copy, a cache of
position facts, erasure markers, what it knows of proposals' answers and withdrawn
applications (to judge whether a due message is still wanted), and the message log keyed by
(event id, recipient[, kind])."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications.domain import (
    MessageFacts,
    Planned,
    proposal_progress,
    unwanted_reason,
)
from shared.documents import utcnow
from shared.events import ApplicationWithdrawn, CloudEvent, ContactRecord
from shared.events.contacts import contact_key
from shared.mongo import Session

Doc = dict[str, Any]


def message_key(event_id: str, recipient_id: str, kind: str = "") -> str:
    """The message log's key: one message per event, recipient and kind, so a redelivered
    event or a restart never sends a message twice."""
    return f"{event_id}:{recipient_id}" + (f":{kind}" if kind else "")


class NotificationsStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.contacts = db["contacts"]
        self.erasures = db["erasures"]
        self.positions = db["positions"]
        self.messages = db["messages"]
        self.proposals = db["proposals"]
        self.withdrawn = db["withdrawn_applications"]

    async def ensure_indexes(self) -> None:
        await self.messages.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self.messages.create_index([("cohort_id", ASCENDING), ("status", ASCENDING)])
        await self.messages.create_index("recipient_id")
        await self.messages.create_index("about")
        await self.messages.create_index("data.proposal_id")

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
                {"_id": message_key(str(event.id), p.recipient_id, p.kind)},
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
                        "kind": p.kind,
                        "about": list(p.about),
                        "status": "suppressed" if erased else "pending",
                        "attempts": 0,
                        "next_attempt_at": p.not_before or utcnow(),
                        # When it falls due (a reminder is planned days ahead): waiting for
                        # facts is measured from here, not from its creation.
                        "due_at": p.not_before or utcnow(),
                        "created_at": utcnow(),
                        "last_error": "recipient erased" if erased else None,
                    }
                },
                upsert=True,
                session=session,
            )
            created += int(result.upserted_id is not None)
        return created

    async def record_facts(self, session: Session, event: CloudEvent[Any]) -> None:
        """Keep what later decides whether a due message is still wanted: who answered which
        proposal, which proposals ended, which applications were withdrawn."""
        progress = proposal_progress(event)
        if progress is not None:
            proposal_id, facts = progress
            await self.proposals.update_one(
                {"_id": proposal_id}, {"$set": facts}, upsert=True, session=session
            )
            await self._suppress_reminders(session, proposal_id, facts)
        if isinstance(event.data, ApplicationWithdrawn):
            await self.withdrawn.update_one(
                {"_id": event.data.application_id},
                {"$set": {"reason": event.data.reason}},
                upsert=True,
                session=session,
            )

    async def _suppress_reminders(
        self, session: Session, proposal_id: str, facts: dict[str, bool]
    ) -> None:
        """Reminders nobody needs any more leave the queue now rather than when they fall
        due (the check at send time still covers a reminder planned after this fact)."""
        if facts.get("closed"):
            kinds, why = ["student", "company"], "the proposal is no longer waiting for answers"
        else:
            kinds = [k.removesuffix("_answered") for k, v in facts.items() if v]
            why = "already answered"
        await self.messages.update_many(
            {
                "data.proposal_id": proposal_id,
                "template": {"$in": [f"answer_reminder.{k}" for k in kinds]},
                "status": "pending",
            },
            {"$set": {"status": "suppressed", "last_error": why}},
            session=session,
        )

    async def unwanted_reason(self, message: Doc) -> str | None:
        """Why this due message must not be sent any more (None: send it). The one place
        delivery asks; the rules are in domain.unwanted_reason."""
        recipient = message["recipient_id"]
        data = message["data"]
        erased = await self.is_erased(message["recipient_kind"], recipient)
        proposal = None
        if "proposal_id" in data:
            proposal = await self.proposals.find_one({"_id": data["proposal_id"]})
        withdrawn = False
        for ref in data.get("unmatched_applications", []):
            if ref["student_id"] == recipient:
                withdrawn = (
                    await self.withdrawn.find_one({"_id": ref["application_id"]}) is not None
                )
        facts = MessageFacts(
            recipient_erased=erased, proposal=proposal, application_withdrawn=withdrawn
        )
        return unwanted_reason(message, facts)

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

    async def update(
        self,
        message_id: str,
        fields: Doc,
        *,
        only_if_sending: bool = True,
        statuses: tuple[str, ...] = ("sending",),
    ) -> bool:
        query: Doc = {"_id": message_id}
        if only_if_sending:
            query["status"] = {"$in": list(statuses)}  # an erasure meanwhile wins
        result = await self.messages.update_one(query, {"$set": fields})
        return result.modified_count == 1
