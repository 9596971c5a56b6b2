"""The notifications service's MongoDB database: its private contacts copy, a cache of
position facts, erasure markers, and the message log keyed by (event id, recipient)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications.compose import Facts
from services.notifications.domain import Planned
from shared.documents import utcnow
from shared.events import CloudEvent, ContactRecord
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
        # The claim's index: equality on status, range on next_attempt_at (see claim_due).
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
            erased = await self.erasures.find_one({"_id": p.recipient_id}, session=session)
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
        await self.contacts.replace_one(
            {"_id": contact.party_id},
            {"_id": contact.party_id, **contact.model_dump(mode="json", exclude={"party_id"})},
            upsert=True,
            session=session,
        )
        await self.erasures.delete_one({"_id": contact.party_id}, session=session)

    async def erase(self, session: Session, party_id: str) -> None:
        """Forget a party: its contact, every stored body naming it, and future messages."""
        await self.contacts.delete_one({"_id": party_id}, session=session)
        await self.erasures.replace_one(
            {"_id": party_id},
            {"_id": party_id, "erased_at": utcnow()},
            upsert=True,
            session=session,
        )
        await self.messages.update_many(
            {"$or": [{"recipient_id": party_id}, {"about": party_id}]},
            {"$set": {"subject": None, "body": None, "to": None, "erased": True}},
            session=session,
        )
        await self.messages.update_many(
            {"recipient_id": party_id, "status": {"$in": ["pending", "sending"]}},
            {"$set": {"status": "suppressed", "last_error": "recipient erased"}},
            session=session,
        )

    async def claim_due(self, lease_until: datetime, *, limit: int = 1) -> list[Doc]:
        """Take up to `limit` due messages: pending ones whose time has come, and "sending"
        ones whose lease ran out (their sender crashed). Each claim has its own lease id;
        only that claim's outcome is recorded (`record`), so a slow sender whose lease was
        taken over cannot overwrite the new holder's result.

        The queries are an equality on `status` and a range on `next_attempt_at`, served by
        the (status, next_attempt_at) index: they read only open messages, however many
        sent ones the log holds.
        """
        claimed: list[Doc] = []
        for _ in range(3):  # another sender took some of the candidates: look again
            now = utcnow()
            want = limit - len(claimed)
            ids: list[str] = []
            for status in ("pending", "sending"):
                if len(ids) < want:
                    found = self.messages.find(
                        {"status": status, "next_attempt_at": {"$lte": now}}, {"_id": 1}
                    )
                    found = found.sort("next_attempt_at", ASCENDING).limit(want - len(ids))
                    ids += [d["_id"] for d in await found.to_list()]
            if not ids:
                break
            taken = await self._claim(ids, now, lease_until)
            claimed += taken
            if len(taken) == len(ids) or len(claimed) >= limit:
                break
        return claimed

    async def _claim(self, ids: list[str], now: datetime, lease_until: datetime) -> list[Doc]:
        lease_id = uuid.uuid4().hex
        # `_id` first: the server looks the ids up instead of scanning.
        result = await self.messages.update_many(
            {
                "_id": {"$in": ids},
                "status": {"$in": ["pending", "sending"]},
                "next_attempt_at": {"$lte": now},
            },
            {"$set": {"status": "sending", "next_attempt_at": lease_until, "lease_id": lease_id}},
        )
        if not result.modified_count:
            return []
        claimed = await self.messages.find({"_id": {"$in": ids}, "lease_id": lease_id}).to_list()
        order = {message_id: i for i, message_id in enumerate(ids)}
        return sorted(claimed, key=lambda d: order[d["_id"]])

    async def next_due(self) -> datetime | None:
        """When the earliest open message falls due (a retry, a lease that runs out, a
        message planned for later), so an idle sender can sleep until then."""
        earliest: datetime | None = None
        for status in ("pending", "sending"):
            first = await self.messages.find_one(
                {"status": status}, {"next_attempt_at": 1}, sort=[("next_attempt_at", ASCENDING)]
            )
            if first is not None and (earliest is None or first["next_attempt_at"] < earliest):
                earliest = first["next_attempt_at"]
        return earliest

    async def facts_for(self, messages: list[Doc]) -> Facts:
        """Contacts, erasures and position facts for a batch of messages, in three queries."""
        parties = sorted(
            {m["recipient_id"] for m in messages}
            | {m["data"]["student_id"] for m in messages if "student_id" in m["data"]}
        )
        positions = sorted(
            {m["data"]["position_id"] for m in messages if "position_id" in m["data"]}
        )
        contacts, erased, facts = await asyncio.gather(
            self.contacts.find({"_id": {"$in": parties}}).to_list(),
            self.erasures.find({"_id": {"$in": parties}}, {"_id": 1}).to_list(),
            self.positions.find({"_id": {"$in": positions}}).to_list(),
        )
        return Facts(
            contacts={c["_id"]: c for c in contacts},
            erased={e["_id"] for e in erased},
            positions={p["_id"]: p for p in facts},
        )

    async def record(self, outcomes: list[tuple[Doc, Doc]]) -> int:
        """Write the outcome of each claimed message (the fields to set) in one bulk write,
        only where the claim still holds: an erasure meanwhile ("suppressed") or another
        sender's later claim wins. The rendered text (`to`, `subject`, `body`) is not kept
        when an erasure has marked the message meanwhile. Returns how many were written."""
        if not outcomes:
            return 0
        ops = [
            UpdateOne(
                {"_id": message["_id"], "status": "sending", "lease_id": message["lease_id"]},
                [{"$set": {k: _unless_erased(k, v) for k, v in fields.items()}}],
            )
            for message, fields in outcomes
        ]
        result = await self.messages.bulk_write(ops, ordered=False)
        return result.modified_count


PERSONAL = frozenset({"to", "subject", "body"})


def _unless_erased(name: str, value: Any) -> Any:
    """An update-pipeline value: literal (a "$" in a subject is text, not a field path), and
    for personal fields None once the message is marked erased."""
    literal = {"$literal": value}
    if name in PERSONAL:
        return {"$cond": [{"$eq": ["$erased", True]}, None, literal]}
    return literal
