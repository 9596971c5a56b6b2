"""Delivery of planned messages over SMTP, at least once, with bounded retries.

Risk chosen: a message is marked sent only after the SMTP server accepted it. A crash in
between leaves it "sending" with a lease; when the lease runs out it is sent again. So a
crash of this process can duplicate an e-mail (with the same Message-ID, which mail clients
collapse) but never lose one. The opposite choice (mark, then send) could lose messages
silently. A database outage is not such a crash: only this process knows the SMTP server
took the mail, so outcomes are retried until the database records them (never left to a
lapsing lease), and messages in flight are never claimed again meanwhile, even when the
database comes back without their claim.

A pass works in batches: claim due messages (one snapshot transaction on an index that
touches only open messages), read the facts they need (five queries at once), decide and
compose each (no I/O), send them concurrently over the mailer's pool of SMTP connections,
and record every outcome in one transaction. The next batch is claimed and the previous one
recorded while a batch is being sent. The sender sleeps until it is woken (a message was
planned, a contact arrived, a retry was asked for) or until the earliest open message falls
due; `poll_seconds` is only a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

from pymongo.errors import PyMongoError

from services.notifications import telemetry
from services.notifications.compose import Composed, Facts, TransientDeliveryError, compose
from services.notifications.domain import (
    COORDINATOR,
    DELIVERY_FAILURES_TEMPLATE,
    is_real_address,
    unwanted_reason,
)
from services.notifications.rendering import Renderer, Site
from services.notifications.smtp_pool import Mailer, SmtpConfig, is_permanent
from services.notifications.store import Doc, NotificationsStore
from shared import tracing
from shared.events.contacts import contact_key
from shared.kafka import IdempotentProducer, dlq_topic
from shared.settings import CommonSettings

__all__ = ["Deliverer", "DeliveryPolicy", "Mailer", "SmtpConfig", "TransientDeliveryError"]

log = logging.getLogger(__name__)

CONSUMER = "notifications-delivery"


@dataclass
class DeliveryPolicy:
    max_attempts: int
    retry_base_seconds: float
    lease_seconds: float
    poll_seconds: float
    wait_for_facts_seconds: float
    coordinator_email: str
    coordinator_name: str
    coordinator_language: str
    coordinator_time_zone: str = "Asia/Tokyo"
    site: Site = field(default_factory=lambda: Site("http://127.0.0.1:8000", "internships@invalid"))
    batch_size: int = 50


@dataclass
class _GiveUp:
    message: Doc
    error: str


@dataclass
class _Outcomes:
    """What became of one batch, written together by `_flush`."""

    claimed: list[str] = field(default_factory=list)  # the batch's message ids
    writes: list[tuple[Doc, Doc]] = field(default_factory=list)
    give_ups: list[_GiveUp] = field(default_factory=list)


class Deliverer:
    def __init__(
        self,
        store: NotificationsStore,
        mailer: Mailer,
        renderer: Renderer,
        policy: DeliveryPolicy,
        producer: IdempotentProducer,
        settings: CommonSettings,
    ) -> None:
        self.store = store
        self.mailer = mailer
        self.renderer = renderer
        self.policy = policy
        self.producer = producer
        self.settings = settings
        self._wake = asyncio.Event()
        self.counts = {"sent": 0, "retried": 0, "failed": 0, "suppressed": 0}
        self.passes = 0  # completed passes of `run` (diagnostics, tests)
        self._batch = _Outcomes()  # of the batch being sent
        self._one_pass = asyncio.Lock()
        # Claimed by this sender, outcome not yet recorded: never claimed again meanwhile.
        self._in_flight: set[str] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()  # before reading, so a wake-up during the pass is kept
                next_due: datetime | None = None
                try:
                    await self.deliver_due()
                    next_due = await self.store.next_due(
                        timedelta(seconds=self.policy.poll_seconds)
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivery pass failed")
                self.passes += 1
                timeout = self.policy.poll_seconds
                if next_due is not None:
                    until_due = (next_due - datetime.now(UTC)).total_seconds()
                    # A small floor: a message due right now is claimed on the next pass.
                    timeout = max(0.05, min(timeout, until_due))
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                # cancellation that coincides with a wake-up, and the service never stops.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            await self.mailer.close()

    async def deliver_due(self) -> int:
        """Deliver everything due now, batch by batch; returns how many were handled.

        While a batch is being sent, the next one is claimed and the previous one recorded:
        the database's work overlaps the SMTP conversations instead of taking turns."""
        handled = 0
        async with self._one_pass:
            claiming: asyncio.Task[list[Doc]] | None = asyncio.create_task(self._claim())
            recording: asyncio.Task[None] | None = None
            try:
                while claiming is not None:
                    batch = await claiming
                    claiming = None
                    if len(batch) == self.policy.batch_size:  # more may be due
                        claiming = asyncio.create_task(self._claim())
                    if batch:
                        outcomes = await self._deliver_batch(batch)
                        handled += len(batch)
                        if recording is not None:
                            await recording
                        recording = asyncio.create_task(self._flush(outcomes))
                if recording is not None:
                    await recording
                    recording = None
            finally:
                await self._settle(claiming, recording)
        return handled

    async def _claim(self) -> list[Doc]:
        lease = datetime.now(UTC) + timedelta(seconds=self.policy.lease_seconds)
        batch = await self.store.claim_due(
            lease, limit=self.policy.batch_size, excluding=frozenset(self._in_flight)
        )
        self._in_flight.update(m["_id"] for m in batch)
        return batch

    async def _settle(
        self, claiming: asyncio.Task[list[Doc]] | None, recording: asyncio.Task[None] | None
    ) -> None:
        """After an interrupted pass: the previous batch's outcomes are still written (those
        mails went out), and a batch claimed ahead is handed back instead of waiting for its
        lease to run out."""
        if recording is not None:
            await asyncio.wait({recording}, timeout=self.policy.lease_seconds / 4)
            if recording.done() and not recording.cancelled() and recording.exception():
                log.error("recording outcomes failed", exc_info=recording.exception())
        if claiming is None:
            return
        if not claiming.done():
            claiming.cancel()
        with contextlib.suppress(BaseException):
            batch = await claiming
            await self.store.release(batch)
            self._in_flight.difference_update(m["_id"] for m in batch)

    async def _deliver_batch(self, messages: list[Doc]) -> _Outcomes:
        """Decide, compose and send claimed messages; returns their outcomes to record.
        Interrupted, it leaves them to their leases, as a crash of this process would."""
        self._batch = _Outcomes(claimed=[m["_id"] for m in messages])
        try:
            return await self._decide_and_send(messages)
        except BaseException:
            self._in_flight.difference_update(self._batch.claimed)
            raise

    async def _decide_and_send(self, messages: list[Doc]) -> _Outcomes:
        facts = await self.store.facts_for(messages)
        facts.contacts[contact_key(COORDINATOR, COORDINATOR)] = {
            "name": self.policy.coordinator_name,
            "email": self.policy.coordinator_email,
            "preferred_language": self.policy.coordinator_language,
            "time_zone": self.policy.coordinator_time_zone,
        }
        ready: list[tuple[Doc, Composed]] = []
        for message in messages:
            # The event's trace and request ids on every line about this message.
            with tracing.within(message.get("trace")):
                composed = self._compose(message, facts)
            if composed is not None:
                ready.append((message, composed))
        # Each send returns its error instead of raising: one bad address must not stop the
        # batch. The mailer bounds the concurrency and the rate.
        errors = await asyncio.gather(*(self._send(m, c) for m, c in ready))
        for (message, composed), error in zip(ready, errors, strict=True):
            with tracing.within(message.get("trace")):
                await self._outcome(message, composed, error)
        return self._batch

    async def _outcome(self, message: Doc, composed: Composed, error: Exception | None) -> None:
        if error is None:
            meta = {
                "language": composed.language,
                "to": composed.to,
                "subject": composed.subject,
                "body": composed.body,
            }
            await self.record_sent(message, composed.email, meta)
        elif is_permanent(error):
            self._fail(message, _describe(error), attempts=message["attempts"] + 1)
        else:
            self._failed_attempt(message, error)

    def _compose(self, message: Doc, facts: Facts) -> Composed | None:
        """The e-mail to send, or None when the message's outcome is already decided."""
        why = unwanted_reason(message, facts.about(message))
        if why is not None:
            self.counts["suppressed"] += 1
            self._batch.writes.append((message, {"status": "suppressed", "last_error": why}))
            log.info("message suppressed", extra={"message_id": message["_id"], "why": why})
            return None
        try:
            return compose(
                message,
                facts,
                self.renderer,
                sender=self.mailer.config.sender,
                site=self.policy.site,
            )
        except TransientDeliveryError as exc:
            self._wait_for_facts(message, str(exc))
        except Exception as exc:  # a template that cannot render: retrying will tell
            log.exception("message could not be composed", extra={"message_id": message["_id"]})
            self._failed_attempt(message, exc)
        return None

    async def _send(self, message: Doc, composed: Composed) -> Exception | None:
        try:
            # The span of this send joins the trace of the request that caused the message.
            with telemetry.sending(message, self.mailer):
                await self.mailer.send(composed.email, composed.envelope)
        except Exception as exc:
            return exc
        return None

    async def record_sent(self, message: Doc, email: Message, meta: dict[str, Any]) -> None:
        """The SMTP server accepted `message`: mark it sent (in the batch's bulk write).
        `meta` holds the language and the text as the reader sees it (to, subject, body)."""
        self._batch.writes.append(
            (
                message,
                {
                    "status": "sent",
                    "sent_at": datetime.now(UTC),
                    "to": meta["to"],
                    "subject": meta["subject"],
                    "body": meta["body"],
                    "language": meta["language"],
                    "message_header_id": email["Message-ID"],
                    "last_error": None,
                },
            )
        )
        self.counts["sent"] += 1
        log.info(
            "message sent",
            extra={
                "message_id": message["_id"],
                "template": message["template"],
                "language": meta["language"],
                "attempts": message["attempts"] + 1,
            },
        )

    def _wait_for_facts(self, message: Doc, why: str) -> None:
        since = message.get("due_at") or message["created_at"]  # reminders are due days later
        waited = (datetime.now(UTC) - since).total_seconds()
        if waited > self.policy.wait_for_facts_seconds:
            self._fail(
                message, f"gave up after {waited:.0f} s: {why}", attempts=message["attempts"]
            )
            return
        # Look again soon, then less often: facts usually arrive within a second.
        retry_in = max(0.5, min(waited, 30.0))
        self._batch.writes.append(
            (
                message,
                {
                    "status": "pending",
                    "next_attempt_at": datetime.now(UTC) + timedelta(seconds=retry_in),
                    "last_error": why,
                },
            )
        )

    def _failed_attempt(self, message: Doc, exc: Exception) -> None:
        attempts = message["attempts"] + 1
        error = _describe(exc)
        if attempts >= self.policy.max_attempts:
            self._fail(message, error, attempts=attempts)
            return
        delay = min(self.policy.retry_base_seconds * 2 ** (attempts - 1), 3600.0)
        self.counts["retried"] += 1
        log.warning(
            "send failed; will retry",
            extra={
                "message_id": message["_id"],
                "attempts": attempts,
                "retry_in_s": delay,
                "error": error,
            },
        )
        self._batch.writes.append(
            (
                message,
                {
                    "status": "pending",
                    "attempts": attempts,
                    "last_error": error,
                    "next_attempt_at": datetime.now(UTC) + timedelta(seconds=delay),
                },
            )
        )

    def _fail(self, message: Doc, error: str, *, attempts: int) -> None:
        """Give up: reported on the event's DLQ, then marked failed (see `_flush`)."""
        self._batch.give_ups.append(_GiveUp({**message, "attempts": attempts}, error))

    async def _flush(self, batch: _Outcomes) -> None:
        """Report give-ups on their DLQs, then write every outcome at once. A give-up whose
        report Kafka did not acknowledge is not marked failed: its lease runs out and it is
        tried (and reported) again, so operations always hear of it."""
        outcomes = list(batch.writes)
        if batch.give_ups:
            acks = await asyncio.gather(
                *(self._report(g) for g in batch.give_ups), return_exceptions=True
            )
            for give_up, ack in zip(batch.give_ups, acks, strict=True):
                message = give_up.message
                if isinstance(ack, BaseException):
                    log.error(
                        "could not report a failed message; will retry",
                        extra={"message_id": message["_id"], "error": repr(ack)},
                    )
                    continue
                outcomes.append(
                    (
                        message,
                        {
                            "status": "failed",
                            "attempts": message["attempts"],
                            "last_error": give_up.error,
                            "failed_at": datetime.now(UTC),
                        },
                    )
                )
                self.counts["failed"] += 1
                log.error(
                    "message failed", extra={"message_id": message["_id"], "error": give_up.error}
                )
        await self._until_recorded(outcomes)
        self._in_flight.difference_update(batch.claimed)
        # The coordinators hear of failures in a digest (a failed digest is not told again).
        failed = sum(
            1
            for message, fields in outcomes
            if fields.get("status") == "failed"
            and message["template"] != DELIVERY_FAILURES_TEMPLATE
        )
        if failed:
            try:
                await self.store.note_failures(
                    failed,
                    datetime.now(UTC),
                    program_address=is_real_address(self.policy.coordinator_email),
                )
            except PyMongoError as exc:  # the failures stay in the log and on the DLQ
                log.warning("failure digest not planned", extra={"error": str(exc)})

    async def _until_recorded(self, outcomes: list[tuple[Doc, Doc]]) -> None:
        """Only this process knows which mails the SMTP server took: if the database is
        down now, keep trying to record them rather than let their leases run out and send
        them twice (they stay in flight, so no pass claims them meanwhile)."""
        delay = 0.5
        while True:
            try:
                await self.store.record(outcomes)
                return
            except PyMongoError as exc:
                log.warning(
                    "outcomes not yet recorded; retrying",
                    extra={"messages": len(outcomes), "retry_in_s": delay, "error": str(exc)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _report(self, give_up: _GiveUp) -> None:
        message = give_up.message
        if not message.get("topic"):
            return  # a failure digest: no event behind it; the log keeps why it failed
        # The event is stored once, beside its messages (older messages kept a copy).
        stored = message.get("event_json") or (
            (await self.store.stored_event(message["event_id"])) or {}
        ).get("event_json", "{}")
        await self.producer.send_and_wait(
            self.settings.topic(dlq_topic(message["topic"])),
            value=stored.encode(),
            key=message["_id"].encode(),
            headers=[
                ("dlq-error", give_up.error.encode()),
                ("dlq-consumer", CONSUMER.encode()),
                ("dlq-attempts", str(message["attempts"]).encode()),
                ("dlq-recipient", message["recipient_id"].encode()),
                ("dlq-template", message["template"].encode()),
            ],
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]
