"""Planning: public events become planned messages, a poll's events at once, and fan-outs
larger than one transaction may hold are written in bounded chunks.

The consumer's transaction records what an event tells (answers, withdrawals), stores the
event once and writes its messages when they fit (at most `FANOUT_CHUNK` per transaction);
a larger fan-out is recorded there as a job, and `run` writes it chunk by chunk, each chunk
with the job's progress in one transaction, so a crash resumes where it stopped and a
message is never planned twice (message ids are the idempotency keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError

from services.notifications.domain import COORDINATOR, plan, to_coordinators
from services.notifications.store import NotificationsStore, Planning
from shared.mongo import Session, after_commit

log = logging.getLogger(__name__)


class Planner:
    def __init__(
        self,
        store: NotificationsStore,
        wake_sender: Callable[[], None],
        *,
        program_address: bool,
        poll_seconds: float = 10,
    ) -> None:
        self.store = store
        self.wake_sender = wake_sender
        self.program_address = program_address
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self.chunks = 0  # fan-out chunks written (diagnostics, tests)

    def wake(self) -> None:
        self._wake.set()

    async def apply(self, events: list[Any], topic: str, session: Session) -> int:
        """Plan the messages of a poll's events of one topic, in the consumer's transaction
        (a few queries for the whole poll, not a few per event). Returns how many were
        created now (a fan-out job's messages follow from `run`)."""
        for event in events:  # in order: an answer and a withdrawal, each a fact to keep
            await self.store.record_facts(session, event)
        plannings = [Planning(event, topic, plan(event)) for event in events]
        if any(m.recipient_id == COORDINATOR for p in plannings for m in p.planned):
            subscribers = await self.store.coordinator_subscribers(session)
            plannings = [
                Planning(
                    p.event,
                    p.topic,
                    to_coordinators(p.planned, subscribers, program_address=self.program_address),
                )
                for p in plannings
            ]
        jobs_before = self.store.fanouts_recorded
        created = await self.store.plan_many(session, plannings)
        await self.store.suppress_reminders_already_answered(session, events)
        if created:
            after_commit(session, self.wake_sender)  # before the commit it would find nothing
        if self.store.fanouts_recorded != jobs_before:
            after_commit(session, self.wake)
        return created

    async def plan_pending(self, max_chunks: int | None = None) -> int:
        """Write fan-out chunks until none is left (or `max_chunks` were written); returns
        how many chunks were written."""
        written = 0
        while max_chunks is None or written < max_chunks:
            created = await self.store.plan_fanout_chunk()
            if created is None:
                break
            written += 1
            self.chunks += 1
            if created:
                self.wake_sender()
        return written

    async def run(self) -> None:
        """The background planner: woken when a job is recorded, and every `poll_seconds`
        for jobs another replica recorded or a crash left unfinished."""
        delay = 0.5
        while True:
            self._wake.clear()
            try:
                await self.plan_pending()
                delay = 0.5
            except PyMongoError as exc:  # idempotent: the next pass writes the chunk again
                log.warning("fan-out chunk not written; retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            except Exception:  # a bug must not end the planner: the job stays, and is retried
                log.exception("fan-out chunk failed; retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
