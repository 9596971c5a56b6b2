"""The portal's own MongoDB database: who may sign in (and the roster invitations still to
mail), sign-in links, sessions and rate limits.

Nothing else: the services own the program's data and the portal reads it through their APIs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.portal.domain import PortalRole, digest
from services.portal.roster import FAILED, SENDING, SENT, WAITING
from shared.documents import utcnow
from shared.mongo import Session

Doc = dict[str, Any]


class PortalStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        # Operator-configured coordinators and university officers, and students (registered
        # themselves or invited from a roster). Keyed by the lower-case e-mail address.
        self.users = db["users"]
        self.links = db["sign_in_links"]
        self.sessions = db["sessions"]
        self.limits = db["rate_limits"]

    async def ensure_indexes(self) -> None:
        await self.users.create_index([("role", ASCENDING), ("sub", ASCENDING)], unique=True)
        await self.users.create_index(
            [("invitation_state", ASCENDING), ("invitation_retry_at", ASCENDING)]
        )
        await self.links.create_index("expires_at")
        await self.links.create_index("sub")
        await self.sessions.create_index("expires_at")
        await self.sessions.create_index("sub")
        await self.limits.create_index("expires_at")

    # people -------------------------------------------------------------------------------

    async def find_user(self, email: str) -> Doc | None:
        return await self.users.find_one({"_id": email})

    async def user_by_sub(self, role: PortalRole, sub: str) -> Doc | None:
        return await self.users.find_one({"role": role.value, "sub": sub})

    async def add_user(self, email: str, role: PortalRole, sub: str, **extra: Any) -> Doc:
        """Add a person once; adding an address again changes nothing and returns the first."""
        doc = {"_id": email, "role": role.value, "sub": sub, "created_at": utcnow(), **extra}
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.find_user(email)
            assert existing is not None
            return existing
        return doc

    async def list_users(self, role: PortalRole | None = None) -> list[Doc]:
        query = {"role": role.value} if role else {}
        return await self.users.find(query).sort("_id").to_list()

    async def find_users(self, emails: Iterable[str]) -> dict[str, Doc]:
        return {u["_id"]: u async for u in self.users.find({"_id": {"$in": list(emails)}})}

    async def add_users(self, docs: list[Doc]) -> int:
        """Add people at once (one round trip for a roster); an address that is there already
        (another upload won the race) is left as it is. Returns how many were added."""
        if not docs:
            return 0
        try:
            return len((await self.users.insert_many(docs, ordered=False)).inserted_ids)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            return int(exc.details.get("nInserted", 0))

    async def remove_user(self, email: str) -> Doc | None:
        """Remove an operator-configured person: their sessions and sign-in links end too."""
        user = await self.users.find_one_and_delete({"_id": email})
        if user is not None:
            await self.end_sessions(PortalRole(user["role"]), user["sub"])
        return user

    async def forget(self, role: PortalRole, sub: str, session: Session | None = None) -> None:
        """Erasure: the person's address, name, roster entry, invitation and sessions go."""
        await self.users.delete_many({"role": role.value, "sub": sub}, session=session)
        await self.end_sessions(role, sub, session=session)

    async def end_sessions(
        self,
        role: PortalRole,
        sub: str,
        *,
        unless_email: str | None = None,
        before: datetime | None = None,
        session: Session | None = None,
    ) -> int:
        """Rights withdrawn: the party's sessions and unused sign-in links end now. Those of
        `unless_email` stay (a company's new contact); with `before`, only those made before
        that moment (a replayed event does not end sessions begun since)."""
        query: Doc = {"role": role.value, "sub": sub}
        if unless_email is not None:
            query["email"] = {"$ne": unless_email}
        if before is not None:
            query["created_at"] = {"$lt": before}
        ended = await self.sessions.delete_many(query, session=session)
        await self.links.delete_many(query, session=session)
        return ended.deleted_count

    # roster invitations: `invitation_state` waiting -> sending -> sent | failed -------------

    async def claim_invitation(self, now: datetime) -> Doc | None:
        """The next invitation due, marked `sending` in the same step: two senders (or a
        restart) never mail the same person."""
        return await self.users.find_one_and_update(
            {"invitation_state": WAITING, "invitation_retry_at": {"$lte": now}},
            {"$set": {"invitation_state": SENDING, "invitation_claimed_at": now}},
            sort=[("invitation_retry_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def invitation_sent(self, email: str, at: datetime) -> None:
        await self.users.update_one(
            {"_id": email, "invitation_state": SENDING},
            {"$set": {"invitation_state": SENT, "invitation_sent_at": at}},
        )

    async def invitation_failed(
        self, email: str, at: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Failed; to be tried again at `retry_at`, or for good (None)."""
        changes: Doc = {"invitation_error": error, "invitation_failed_at": at}
        if retry_at is None:
            changes["invitation_state"] = FAILED
        else:
            changes |= {"invitation_state": WAITING, "invitation_retry_at": retry_at}
        await self.users.update_one(
            {"_id": email, "invitation_state": SENDING},
            {"$set": changes, "$inc": {"invitation_attempts": 1}},
        )

    async def fail_abandoned_invitations(self, claimed_before: datetime, at: datetime) -> int:
        """Claims a sender never finished (it stopped mid-send): whether the mail went out is
        unknown, so they count as failed rather than being sent twice."""
        result = await self.users.update_many(
            {"invitation_state": SENDING, "invitation_claimed_at": {"$lt": claimed_before}},
            {
                "$set": {
                    "invitation_state": FAILED,
                    "invitation_error": "interrupted",
                    "invitation_failed_at": at,
                }
            },
        )
        return result.modified_count

    async def invitation_counts(self) -> dict[str, int]:
        return {
            state: await self.users.count_documents({"invitation_state": state})
            for state in (WAITING, SENDING, SENT, FAILED)
        }

    # sign-in links --------------------------------------------------------------------------

    async def create_link(
        self, secret: str, *, email: str, role: PortalRole, sub: str, next_path: str, ttl: timedelta
    ) -> None:
        now = utcnow()
        await self.links.insert_one(
            {
                "_id": digest(secret),
                "email": email,
                "role": role.value,
                "sub": sub,
                "next": next_path,
                "created_at": now,
                "expires_at": now + ttl,
                "used_at": None,
            }
        )

    async def peek_link(self, secret: str) -> Doc | None:
        return await self.links.find_one(
            {"_id": digest(secret), "used_at": None, "expires_at": {"$gt": utcnow()}}
        )

    async def use_link(self, secret: str) -> Doc | None:
        """The link's facts if it is unused and unexpired; it is spent in the same step, so a
        second use (or a race of two) gets nothing."""
        now = utcnow()
        return await self.links.find_one_and_update(
            {"_id": digest(secret), "used_at": None, "expires_at": {"$gt": now}},
            {"$set": {"used_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    # sessions -------------------------------------------------------------------------------

    async def create_session(self, secret: str, *, expires_at: datetime, **facts: Any) -> Doc:
        now = utcnow()
        doc = {
            "_id": digest(secret),
            "created_at": now,
            "last_seen": now,
            "expires_at": expires_at,
            **facts,
        }
        await self.sessions.insert_one(doc)
        return doc

    async def get_session(self, secret: str) -> Doc | None:
        return await self.sessions.find_one({"_id": digest(secret)})

    async def touch_session(self, session_id: str, at: datetime) -> None:
        await self.sessions.update_one({"_id": session_id}, {"$set": {"last_seen": at}})

    async def update_session(self, session_id: str, changes: Doc) -> None:
        await self.sessions.update_one({"_id": session_id}, {"$set": changes})

    async def pop_flash(self, session_id: str) -> Doc | None:
        doc = await self.sessions.find_one_and_update(
            {"_id": session_id, "flash": {"$ne": None}}, {"$set": {"flash": None}}
        )
        return doc.get("flash") if doc else None

    async def delete_session(self, session_id: str) -> None:
        await self.sessions.delete_one({"_id": session_id})

    async def sweep(self, now: datetime) -> None:
        """Expired links, sessions and counters go (SecantusDB has no TTL indexes, so we do it)."""
        for collection in (self.links, self.sessions, self.limits):
            await collection.delete_many({"expires_at": {"$lt": now}})

    # rate limits ----------------------------------------------------------------------------

    async def count_hit(self, key: str, window: datetime, window_length: timedelta) -> int:
        """Count one request against `key` in this window; returns the count so far."""
        doc = await self.limits.find_one_and_update(
            {"_id": f"{key}@{window.isoformat()}"},
            {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": window + window_length}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return int(doc["count"])
