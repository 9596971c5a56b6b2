"""The notifications service's MongoDB database: its private contacts copy, a cache of
position facts, erasure markers, what it knows of proposals' answers and withdrawn
applications (to judge whether a due message is still wanted), and the message log keyed by
(event id, recipient[, kind])."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.notifications.compose import Facts
from services.notifications.domain import (
    ALREADY_ANSWERED,
    COORDINATOR,
    DELIVERY_FAILURES,
    DELIVERY_FAILURES_TEMPLATE,
    NOT_PLANNED,
    NOT_PLANNED_TEMPLATE,
    PROPOSAL_CLOSED,
    RECIPIENT_ERASED,
    SUBSCRIPTIONS,
    Planned,
    digest_window,
    proposal_progress,
    shared_facts,
    unwanted_reason,
)
from shared import tracing
from shared.documents import utcnow
from shared.events import ApplicationWithdrawn, CloudEvent, ContactRecord, MatchProposed
from shared.events.contacts import contact_key
from shared.mongo import Session, in_transaction

# What a proposal's answers and ending leave in `proposals` (see domain.proposal_progress).
ANSWER_FACTS = ("student_answered", "company_answered", "closed")

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
        # Each event that planned messages, stored once (not in every message).
        self.events = db["events"]
        # Fan-outs larger than one transaction may write, planned in chunks.
        self.fanouts = db["fanouts"]
        # The most messages one planning transaction wrote (diagnostics, tests).
        self.largest_write = 0
        self.fanouts_recorded = 0

    async def ensure_indexes(self) -> None:
        # The claim's index: equality on status, range on next_attempt_at (see claim_due).
        await self.messages.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self.messages.create_index([("cohort_id", ASCENDING), ("status", ASCENDING)])
        await self.messages.create_index("recipient_id")
        await self.messages.create_index("about")
        await self.messages.create_index("data.proposal_id")
        # Coordinators' contacts live beside the others (key `coordinator:<id>`).
        await self.contacts.create_index("party_type")
        await self.fanouts.create_index([("done", ASCENDING), ("created_at", ASCENDING)])

    async def plan_messages(
        self, session: Session, event: CloudEvent[Any], topic: str, planned: list[Planned]
    ) -> int:
        """Record the messages one event calls for (see `plan_many`)."""
        return await self.plan_many(session, [Planning(event, topic, planned)])

    async def plan_many(self, session: Session, plannings: list[Planning]) -> int:
        """Record the messages a poll's events call for, in the caller's transaction:
        idempotent (keyed by event, recipient and kind), each event stored once (the DLQ
        report of a message that fails reads it there), at most FANOUT_CHUNK messages
        written here. An event whose messages would pass that bound becomes a fan-out job,
        written in chunks of their own by `plan_fanout_chunk`: a transaction never grows
        with the fan-out. Returns how many messages were created now."""
        plannings = [p for p in plannings if p.planned]
        if not plannings:
            return 0
        await self.events.bulk_write(
            [
                UpdateOne({"_id": str(p.event.id)}, {"$setOnInsert": event_doc(p)}, upsert=True)
                for p in plannings
            ],
            ordered=False,
            session=session,
        )
        now, trace = utcnow(), tracing.outgoing_headers()
        docs: list[Doc] = []
        overflow: list[Planning] = []
        for p in plannings:
            if not overflow and len(docs) + len(p.planned) <= FANOUT_CHUNK:
                base = base_doc(p.event, p.topic, trace)
                docs += [message_doc(base, m, now) for m in p.planned]
            else:  # this event and the poll's later ones: one job (order kept)
                overflow.append(p)
        if overflow:
            # Named by its first event: a redelivery of the same events records no second job.
            await self.fanouts.update_one(
                {"_id": f"fanout:{overflow[0].event.id}"},
                {"$setOnInsert": fanout_doc(overflow, trace, now)},
                upsert=True,
                session=session,
            )
            self.fanouts_recorded += 1
        return await self._write_messages(session, docs)

    async def plan_fanout_chunk(self) -> int | None:
        """Write the next chunk (at most FANOUT_CHUNK messages) of the oldest unfinished
        fan-out job, with the job's progress, in one transaction. Idempotent: a crash
        before the commit leaves the chunk to be written again, and messages already
        there are kept as they are. Returns the messages created, None when no job waits."""
        job = await self.fanouts.find_one(
            {"done": False}, {"planned": 0}, sort=[("created_at", ASCENDING)]
        )
        if job is None:
            return None
        start = job["next"]
        chunk = await self.fanouts.find_one(
            {"_id": job["_id"]}, {"planned": {"$slice": [start, FANOUT_CHUNK]}}
        )
        assert chunk is not None
        now = utcnow()
        docs = [
            message_doc(job["bases"][m["base"]], planned_from(m), now) for m in chunk["planned"]
        ]
        end = start + len(docs)

        async def write(session: Session) -> int:
            # Progress moves only from where this planner read it: another planner that
            # wrote this chunk meanwhile makes this one a no-op.
            done = end >= job["total"]
            progress: Doc = {"$set": {"next": end, "done": done, "updated_at": now}}
            if done:  # the messages hold it all now
                progress["$unset"] = {"planned": "", "bases": ""}
            moved = await self.fanouts.update_one(
                {"_id": job["_id"], "next": start}, progress, session=session
            )
            if not moved.modified_count:
                return 0
            return await self._write_messages(session, docs)

        return await in_transaction(self.db.client, write)

    async def _write_messages(self, session: Session, docs: list[Doc]) -> int:
        """Insert the messages not yet there (erased recipients' ones as suppressed): one
        read of the erasures and of the ids already planned, one insert, however many
        messages. Plain inserts, not upserts: on the embedded MongoDB an upsert into this
        many-indexed collection costs about twice an insert. In the snapshot transaction a
        concurrent insert of the same id conflicts and the transaction is retried."""
        if not docs:
            return 0
        self.largest_write = max(self.largest_write, len(docs))
        keys = sorted({contact_key(d["recipient_kind"], d["recipient_id"]) for d in docs})
        erased, there = await asyncio.gather(
            _by_id(self.erasures, keys, {"_id": 1}, session),
            _by_id(self.messages, [d["_id"] for d in docs], {"_id": 1}, session),
        )
        erased_keys, planned = {e["_id"] for e in erased}, {m["_id"] for m in there}
        fresh: dict[str, Doc] = {}
        for doc in docs:
            if doc["_id"] in planned or doc["_id"] in fresh:
                continue
            if contact_key(doc["recipient_kind"], doc["recipient_id"]) in erased_keys:
                doc = {**doc, "status": "suppressed", "last_error": RECIPIENT_ERASED}
            fresh[doc["_id"]] = doc
        if fresh:
            await self.messages.insert_many(list(fresh.values()), session=session)
        return len(fresh)

    async def stored_event(self, event_id: str) -> Doc | None:
        return await self.events.find_one({"_id": event_id})

    async def note_not_planned(self, topic: str, value: bytes | None, reason: str) -> str:
        """An event whose messages could not be planned (it was dead-lettered): one failed
        entry for the coordinators' deliveries page, retried by planning the event again.
        Returns the entry's id."""
        raw = (value or b"").decode("utf-8", "replace")
        try:
            envelope = json.loads(raw)
            if not isinstance(envelope, dict):
                raise ValueError("not an object")
        except ValueError:
            envelope = {}
        event_id = str(envelope.get("id") or hashlib.sha256(raw.encode()).hexdigest()[:32])
        data: Doc = envelope["data"] if isinstance(envelope.get("data"), dict) else {}
        now = utcnow()
        await self.events.update_one(
            {"_id": event_id},
            {"$setOnInsert": {"topic": topic, "event_json": raw, "stored_at": now}},
            upsert=True,
        )
        entry = message_key(event_id, COORDINATOR, "not-planned")
        await self.messages.update_one(
            {"_id": entry},
            {
                "$setOnInsert": {
                    "event_id": event_id,
                    "event_type": envelope.get("type"),
                    "topic": topic,
                    "data": {},
                    "cohort_id": data.get("cohort_id"),
                    "recipient_id": COORDINATOR,
                    "recipient_kind": COORDINATOR,
                    "template": NOT_PLANNED_TEMPLATE,
                    "kind": "not-planned",
                    "about": [],
                    "attempts": 0,
                    "next_attempt_at": now,
                    "due_at": now,
                    "created_at": now,
                },
                "$set": {
                    "status": "failed",
                    "last_error": NOT_PLANNED + reason[:1000],
                    "failed_at": now,
                },
            },
            upsert=True,
        )
        return entry

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
            kinds, why = ["student", "company"], PROPOSAL_CLOSED
        else:
            kinds = [k.removesuffix("_answered") for k, v in facts.items() if v]
            why = ALREADY_ANSWERED
        await self.messages.update_many(
            {
                "data.proposal_id": proposal_id,
                "template": {"$in": [f"answer_reminder.{k}" for k in kinds]},
                "status": "pending",
            },
            {"$set": {"status": "suppressed", "last_error": why}},
            session=session,
        )

    async def suppress_reminders_already_answered(
        self, session: Session, events: list[CloudEvent[Any]]
    ) -> None:
        """A proposal's answers travel on other topics than the proposal itself, so they may
        be known before its reminders are planned (or be applied at the same moment, in
        another partition's transaction): those reminders leave the queue at once too.
        Writing the proposal's document, which every answer writes as well, makes two such
        transactions conflict, so one is retried and sees the other (reading alone would
        let each miss the other's write). One bulk write and one read for a poll's
        proposals."""
        ids = sorted({e.data.proposal_id for e in events if isinstance(e.data, MatchProposed)})
        if not ids:
            return
        await self.proposals.bulk_write(
            [
                UpdateOne({"_id": i}, {"$set": {"reminders_planned": True}}, upsert=True)
                for i in ids
            ],
            ordered=False,
            session=session,
        )
        answered = {k: True for k in ANSWER_FACTS}
        async for known in self.proposals.find(
            {"_id": {"$in": ids}, "$or": [{k: True} for k in answered]}, session=session
        ):
            facts = {k: True for k in ANSWER_FACTS if known.get(k)}
            await self._suppress_reminders(session, known["_id"], facts)

    async def unwanted_reason(self, message: Doc) -> str | None:
        """Why this due message must not be sent any more (None: send it). The rules are in
        domain.unwanted_reason; the sender asks the same question for a whole batch with
        `facts_for`."""
        return unwanted_reason(message, (await self.facts_for([message])).about(message))

    async def upsert_position(self, session: Session, position_id: str, fields: Doc) -> None:
        await self.positions.update_one(
            {"_id": position_id}, {"$set": fields}, upsert=True, session=session
        )

    async def upsert_contacts(self, session: Session, contacts: list[ContactRecord]) -> None:
        """Contacts are keyed by role and id (`student:stu-001`): one party's record can
        never replace another role's contact. In order: the last record of a party wins.
        A party that gives its contact again is no longer erased."""
        if not contacts:
            return
        await self.contacts.bulk_write(
            [
                ReplaceOne({"_id": c.key}, {"_id": c.key, **c.model_dump(mode="json")}, True)
                for c in contacts
            ],
            ordered=True,
            session=session,
        )
        keys = sorted({c.key for c in contacts})
        await self.erasures.delete_many({"_id": {"$in": keys}}, session=session)

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
            {"$set": {"status": "suppressed", "last_error": RECIPIENT_ERASED}},
            session=session,
        )

    # -- coordinators: who receives the program's mails --------------------------------------

    async def coordinator_subscribers(
        self, session: Session | None = None, subscription: str | None = None
    ) -> dict[str, frozenset[str]]:
        """Every coordinator's id and subscriptions (only those with `subscription`)."""
        query: Doc = {"party_type": "coordinator"}
        if subscription is not None:
            query[f"subscriptions.{subscription}"] = True
        docs = self.contacts.find(query, {"party_id": 1, "subscriptions": 1}, session=session)
        return {
            d["party_id"]: frozenset(k for k, on in d.get("subscriptions", {}).items() if on)
            async for d in docs
        }

    async def coordinator(self, sub: str) -> Doc | None:
        return await self.contact("coordinator", sub)

    async def put_coordinator(self, sub: str, fields: Doc) -> Doc:
        """Register a coordinator or change what they chose. Fields not given keep their
        value; a new coordinator reads Japanese in Japan time and receives every program
        mail. A coordinator registered again after removal is no longer erased."""
        key = contact_key("coordinator", sub)
        defaults: Doc = {
            "preferred_language": "ja",
            "time_zone": "Asia/Tokyo",
            "subscriptions": dict.fromkeys(SUBSCRIPTIONS, True),
        }
        given = {k: v for k, v in fields.items() if v is not None}

        async def put(session: Session) -> Doc | None:
            await self.contacts.update_one(
                {"_id": key},
                {
                    "$set": {"party_type": "coordinator", "party_id": sub, **given},
                    "$setOnInsert": {k: v for k, v in defaults.items() if k not in given},
                },
                upsert=True,
                session=session,
            )
            await self.erasures.delete_one({"_id": key}, session=session)
            return await self.contacts.find_one({"_id": key}, session=session)

        doc = await in_transaction(self.db.client, put)
        assert doc is not None
        return doc

    async def remove_coordinator(self, sub: str) -> bool:
        """The coordinator may no longer sign in: no more mails to them (as an erasure)."""

        async def remove(session: Session) -> bool:
            known = await self.contacts.find_one(
                {"_id": contact_key("coordinator", sub)}, {"_id": 1}, session=session
            )
            await self.erase(session, "coordinator", sub)
            return known is not None

        return await in_transaction(self.db.client, remove)

    async def note_failures(self, count: int, at: datetime, *, program_address: bool) -> None:
        """Failed deliveries, told to the coordinators who want to hear of them in one digest
        per window (sent when the window ends), whatever the number of failures."""
        start, end = digest_window(at)
        recipients = sorted(await self.coordinator_subscribers(subscription=DELIVERY_FAILURES))
        if program_address:
            recipients.insert(0, COORDINATOR)
        for recipient in recipients:
            await self.messages.update_one(
                # An id the delivery log can retry by (letters, digits, . _ : - only).
                {"_id": f"failures:{start:%Y%m%dT%H%M}:{recipient}"},
                {
                    "$setOnInsert": {
                        "event_id": None,
                        "event_type": None,
                        "topic": None,  # no event behind it: no DLQ either
                        "data.window_start": start.isoformat(),
                        "data.window_end": end.isoformat(),
                        "cohort_id": None,
                        "recipient_id": recipient,
                        "recipient_kind": "coordinator",
                        "template": DELIVERY_FAILURES_TEMPLATE,
                        "kind": "digest",
                        "about": [],
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": end,
                        "due_at": end,
                        "created_at": utcnow(),
                        "last_error": None,
                    },
                    "$inc": {"data.failed_count": count},
                },
                upsert=True,
            )

    async def claim_due(
        self, lease_until: datetime, *, limit: int = 1, excluding: frozenset[str] = frozenset()
    ) -> list[Doc]:
        """Take up to `limit` due messages: pending ones whose time has come, and "sending"
        ones whose lease ran out (their sender crashed). Each claim has its own lease id;
        only that claim's outcome is recorded (`record`), so a slow sender whose lease was
        taken over cannot overwrite the new holder's result.

        The reads are an equality on `status` and a range on `next_attempt_at`, served by
        the (status, next_attempt_at) index: they touch only open messages, however many
        sent ones the log holds. Read and update are one snapshot transaction: two senders
        claiming at once conflict, and the one that retries reads what is left.

        `excluding`: the caller's messages in flight (sent or being sent, outcome not yet
        recorded). A database that crashed can come back without their claim (they read
        "pending" again); they must not be claimed, and sent, a second time meanwhile.
        """

        async def claim(session: Session) -> list[Doc]:
            now = utcnow()
            due: list[Doc] = []
            for status in ("pending", "sending"):
                if len(due) < limit:
                    wanted = limit - len(due)
                    query: Doc = {"status": status, "next_attempt_at": {"$lte": now}}
                    found = self.messages.find(query, session=session)
                    # Messages in flight are dropped here, not with `$nin` in the query: the
                    # embedded MongoDB checks `$nin` item by item against every due message
                    # (1,000 due and 150 in flight: 243 ms a claim instead of 35).
                    found = found.sort("next_attempt_at", ASCENDING).limit(wanted + len(excluding))
                    fresh = [d for d in await found.to_list() if d["_id"] not in excluding]
                    due += fresh[:wanted]
            if not due:
                return []
            lease = {"status": "sending", "next_attempt_at": lease_until, "lease_id": uuid4().hex}
            await self.messages.update_many(
                {"_id": {"$in": [d["_id"] for d in due]}}, {"$set": lease}, session=session
            )
            return [d | lease for d in due]

        return await in_transaction(self.db.client, claim)

    async def release(self, messages: list[Doc]) -> None:
        """Hand claimed messages back unsent (the sender is stopping): due again at once."""
        for message in messages:
            await self.messages.update_one(
                {"_id": message["_id"], "status": "sending", "lease_id": message["lease_id"]},
                {"$set": {"status": "pending", "next_attempt_at": utcnow()}},
            )

    async def next_due(self, within: timedelta) -> datetime | None:
        """When the earliest open message falls due within `within` from now (a retry, a
        lease that runs out, a message planned for later), so an idle sender can sleep
        until then. Bounded because the embedded MongoDB reads every document in the
        query's range before it sorts and limits: without the bound, each pass would read
        every reminder planned for the coming days."""
        earliest: datetime | None = None
        horizon = utcnow() + within
        for status in ("pending", "sending"):
            first = await self.messages.find_one(
                {"status": status, "next_attempt_at": {"$lte": horizon}},
                {"next_attempt_at": 1},
                sort=[("next_attempt_at", ASCENDING)],
            )
            if first is not None and (earliest is None or first["next_attempt_at"] < earliest):
                earliest = first["next_attempt_at"]
        return earliest

    async def facts_for(self, messages: list[Doc]) -> Facts:
        """What deciding and composing a batch of messages needs (contacts, erasures,
        position facts, proposals' answers, withdrawn applications), in five queries run at
        once, however many messages the batch holds."""
        datas = [m["data"] for m in messages]
        parties = sorted(
            {contact_key(m["recipient_kind"], m["recipient_id"]) for m in messages}
            | {contact_key("student", d["student_id"]) for d in datas if "student_id" in d}
        )
        positions = sorted({d["position_id"] for d in datas if "position_id" in d})
        proposals = sorted({d["proposal_id"] for d in datas if "proposal_id" in d})
        applications = sorted(
            {ref["application_id"] for d in datas for ref in d.get("unmatched_applications", [])}
        )
        contacts, erased, facts, answers, withdrawn = await asyncio.gather(
            _by_id(self.contacts, parties),
            _by_id(self.erasures, parties, {"_id": 1}),
            _by_id(self.positions, positions),
            _by_id(self.proposals, proposals),
            _by_id(self.withdrawn, applications, {"_id": 1}),
        )
        return Facts(
            contacts={c["_id"]: c for c in contacts},
            erased={e["_id"] for e in erased},
            positions={p["_id"]: p for p in facts},
            proposals={p["_id"]: p for p in answers},
            withdrawn_applications={w["_id"] for w in withdrawn},
        )

    async def record(self, outcomes: list[tuple[Doc, Doc]]) -> int:
        """Write the outcome of each claimed message (the fields to set), only where the
        claim still holds: an erasure meanwhile ("suppressed") or another sender's later
        claim wins. The rendered text (`to`, `subject`, `body`) is not kept when an erasure
        has marked the message meanwhile. Returns how many were written.

        A "sent" outcome is written on a message that reads "pending" too: a database that
        crashed can come back without the claim, but the mail went out and must not be sent
        again (the caller retries recording until the database is back).

        One snapshot transaction: read which claims still hold, then update by `_id` alone.
        An erasure or a claim committing meanwhile conflicts and the transaction retries. On
        the embedded MongoDB this costs half of one conditional retryable write per message
        (one commit, and `_id` point updates instead of a plan per statement)."""
        if not outcomes:
            return 0

        async def write(session: Session) -> int:
            ids = [message["_id"] for message, _ in outcomes]
            held = {
                d["_id"]: d
                async for d in self.messages.find(
                    {"_id": {"$in": ids}, "status": {"$in": ["sending", "pending"]}},
                    {"status": 1, "lease_id": 1, "erased": 1},
                    session=session,
                )
            }
            ops = []
            for message, fields in outcomes:
                current = held.get(message["_id"])
                if current is None or not _claim_holds(current, message, fields):
                    continue
                if current.get("erased"):
                    fields = {k: None if k in PERSONAL else v for k, v in fields.items()}
                ops.append(UpdateOne({"_id": message["_id"]}, {"$set": fields}))
            if ops:
                await self.messages.bulk_write(ops, ordered=False, session=session)
            return len(ops)

        return await in_transaction(self.db.client, write)


def _claim_holds(current: Doc, claimed: Doc, outcome: Doc) -> bool:
    if current["status"] == "pending":  # the claim was lost with the database
        return outcome.get("status") == "sent"
    return bool(current.get("lease_id") == claimed["lease_id"])


async def _by_id(
    collection: AsyncCollection[Doc],
    ids: list[str],
    projection: Doc | None = None,
    session: Session | None = None,
) -> list[Doc]:
    """The documents with these ids (no round trip for none)."""
    if not ids:
        return []
    return await collection.find({"_id": {"$in": ids}}, projection, session=session).to_list()


# The most messages one transaction writes: a larger fan-out is a job written in chunks.
FANOUT_CHUNK = 500


@dataclass(frozen=True)
class Planning:
    """The messages one event calls for."""

    event: CloudEvent[Any]
    topic: str
    planned: list[Planned]


def event_doc(p: Planning) -> Doc:
    return {
        "type": p.event.type,
        "topic": p.topic,
        "event_json": p.event.model_dump_json(),
        "stored_at": utcnow(),
    }


def base_doc(event: CloudEvent[Any], topic: str, trace: dict[str, str]) -> Doc:
    """What every message of an event shares: ids and the payload's facts without its
    lists of parties (see domain.shared_facts), so a message's size stays bounded."""
    data = shared_facts(event.data.model_dump(mode="json"))
    return {
        "event_id": str(event.id),
        "event_type": event.type,
        "topic": topic,
        "data": data,
        "cohort_id": data.get("cohort_id"),
        # The event's trace context and request id: its e-mail's send joins the trace of
        # the request that caused it.
        "trace": trace,
    }


def message_doc(base: Doc, p: Planned, now: datetime) -> Doc:
    return {
        **base,
        "_id": message_key(base["event_id"], p.recipient_id, p.kind),
        "data": {**base["data"], **dict(p.details)},
        "recipient_id": p.recipient_id,
        "recipient_kind": p.recipient_kind,
        "template": p.template,
        "kind": p.kind,
        "about": list(p.about),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": p.not_before or now,
        # When it falls due (a reminder is planned days ahead): waiting for facts is
        # measured from here, not from its creation.
        "due_at": p.not_before or now,
        "created_at": now,
        "last_error": None,
    }


def fanout_doc(plannings: list[Planning], trace: dict[str, str], now: datetime) -> Doc:
    """A fan-out job: the messages of `plannings` in order, each naming its event's base."""
    planned = [{**planned_doc(m), "base": i} for i, p in enumerate(plannings) for m in p.planned]
    return {
        "bases": [base_doc(p.event, p.topic, trace) for p in plannings],
        "planned": planned,
        "total": len(planned),
        "next": 0,
        "done": False,
        "created_at": now,
    }


def planned_doc(p: Planned) -> Doc:
    return {
        "recipient_id": p.recipient_id,
        "recipient_kind": p.recipient_kind,
        "template": p.template,
        "about": list(p.about),
        "kind": p.kind,
        "not_before": p.not_before,
        "details": [list(d) for d in p.details],
    }


def planned_from(doc: Doc) -> Planned:
    return Planned(
        recipient_id=doc["recipient_id"],
        recipient_kind=doc["recipient_kind"],
        template=doc["template"],
        about=tuple(doc["about"]),
        kind=doc["kind"],
        not_before=doc["not_before"],
        details=tuple((k, v) for k, v in doc["details"]),
    )


PERSONAL = frozenset({"to", "subject", "body"})
