"""Delivery of planned messages over SMTP, at least once, with bounded retries.

Risk chosen: a message is marked sent only after the SMTP server accepted it. A crash in
between leaves it "sending" with a lease; when the lease runs out it is sent again. So a
crash can duplicate an e-mail (with the same Message-ID, which mail clients collapse) but
never lose one. The opposite choice (mark, then send) could lose messages silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

import aiosmtplib
from pymongo.errors import PyMongoError

from services.notifications.domain import COORDINATOR
from services.notifications.rendering import Renderer, Site, build_context
from services.notifications.store import Doc, NotificationsStore
from services.notifications.wording import language_of
from shared.kafka import IdempotentProducer, dlq_topic
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

CONSUMER = "notifications-delivery"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    start_tls: bool
    use_tls: bool
    timeout: float
    sender: str


class Mailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(self, message: EmailMessage) -> None:
        c = self.config
        await aiosmtplib.send(
            message,
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            start_tls=c.start_tls,
            use_tls=c.use_tls,
            timeout=c.timeout,
        )


class TransientDeliveryError(Exception):
    """Not deliverable yet (e.g. the contact has not arrived); try again later."""


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

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery pass failed")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that coincides with a wake-up, and the service then never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.poll_seconds):
                    await self._wake.wait()

    async def deliver_due(self) -> int:
        handled = 0
        while True:
            lease = datetime.now(UTC) + timedelta(seconds=self.policy.lease_seconds)
            message = await self.store.claim_due(lease)
            if message is None:
                return handled
            await self.deliver(message)
            handled += 1

    async def deliver(self, message: Doc) -> None:
        try:
            email, meta = await self.compose(message)
        except TransientDeliveryError as exc:
            await self._wait_for_facts(message, str(exc))
            return
        if email is None:
            self.counts["suppressed"] += 1
            await self.store.update(
                message["_id"], {"status": "suppressed", "last_error": meta["why"]}
            )
            log.info("message suppressed", extra={"message_id": message["_id"], "why": meta["why"]})
            return
        try:
            await self.mailer.send(email)
        except Exception as exc:
            await self._failed_attempt(message, exc)
            return
        await self._until_recorded(message, email, meta)

    async def _until_recorded(
        self, message: Doc, email: EmailMessage, meta: dict[str, Any]
    ) -> None:
        """Only this process knows the SMTP server took the e-mail: if the database is down
        now, keep trying to record it rather than let the lease run out and send it twice."""
        delay = 0.5
        while True:
            try:
                await self.record_sent(message, email, meta)
                return
            except PyMongoError as exc:
                log.warning(
                    "sent, but not yet recorded; retrying",
                    extra={"message_id": message["_id"], "retry_in_s": delay, "error": str(exc)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def record_sent(self, message: Doc, email: EmailMessage, meta: dict[str, Any]) -> None:
        await self.store.update(
            message["_id"],
            {
                "status": "sent",
                "sent_at": datetime.now(UTC),
                "to": email["To"],
                "subject": email["Subject"],
                "body": email.get_content(),
                "language": meta["language"],
                "message_header_id": email["Message-ID"],
                "last_error": None,
            },
            # A claim lost with a crashed database reads "pending": the mail still went out.
            statuses=("sending", "pending"),
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

    async def compose(self, message: Doc) -> tuple[EmailMessage | None, dict[str, Any]]:
        """The e-mail for a message, None when it must not be sent (no longer wanted)."""
        recipient_id = message["recipient_id"]
        why = await self.store.unwanted_reason(message)
        if why is not None:
            return None, {"why": why}
        contact: dict[str, Any] | None
        if recipient_id == COORDINATOR:
            contact = {
                "name": self.policy.coordinator_name,
                "email": self.policy.coordinator_email,
                "preferred_language": self.policy.coordinator_language,
                "time_zone": self.policy.coordinator_time_zone,
            }
        else:
            contact = await self.store.contact(message["recipient_kind"], recipient_id)
            if contact is None:
                raise TransientDeliveryError(f"no contact yet for {recipient_id}")
        data = message["data"]
        position = None
        if "position_id" in data:
            position = await self.store.positions.find_one({"_id": data["position_id"]})
            if position is None:
                raise TransientDeliveryError(f"no facts yet for position {data['position_id']}")
        student_name = None
        if "student_id" in data and recipient_id != data["student_id"]:
            student = await self.store.contact("student", data["student_id"])
            student_name = student["name"] if student else None
        language = language_of(contact.get("preferred_language"))
        context = build_context(
            message,
            contact,
            language,
            student_name=student_name,
            position=position,
            site=self.policy.site,
        )
        subject, body, used = self.renderer.render(message["template"], language, context)
        email = EmailMessage()
        email["From"] = self.mailer.config.sender
        email["To"] = formataddr((contact["name"], contact["email"]))
        email["Subject"] = subject
        email["Date"] = formatdate(localtime=False)
        # Stable per (event, recipient): a resend after a crash is recognisably the same mail.
        digest = hashlib.sha256(message["_id"].encode()).hexdigest()[:32]
        email["Message-ID"] = f"<{digest}@kitakyushu-internships>"
        email["X-Event-Id"] = message["event_id"]
        email["X-Template"] = message["template"]
        email.set_content(body)
        email["Content-Language"] = used.value  # after set_content, which resets Content-*
        return email, {"language": used.value}

    async def _wait_for_facts(self, message: Doc, why: str) -> None:
        since = message.get("due_at") or message["created_at"]  # reminders are due days later
        waited = (datetime.now(UTC) - since).total_seconds()
        if waited > self.policy.wait_for_facts_seconds:
            await self._give_up(message, f"gave up after {waited:.0f} s: {why}")
            return
        retry_at = datetime.now(UTC) + timedelta(seconds=min(5.0, self.policy.poll_seconds * 2))
        await self.store.update(
            message["_id"], {"status": "pending", "next_attempt_at": retry_at, "last_error": why}
        )

    async def _failed_attempt(self, message: Doc, exc: Exception) -> None:
        attempts = message["attempts"] + 1
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if attempts >= self.policy.max_attempts:
            await self.store.update(message["_id"], {"attempts": attempts})
            await self._give_up({**message, "attempts": attempts}, error)
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
        await self.store.update(
            message["_id"],
            {
                "status": "pending",
                "attempts": attempts,
                "last_error": error,
                "next_attempt_at": datetime.now(UTC) + timedelta(seconds=delay),
            },
        )

    async def _give_up(self, message: Doc, error: str) -> None:
        """Mark failed and report on the event's DLQ so operations see it."""
        await self.producer.send_and_wait(
            self.settings.topic(dlq_topic(message["topic"])),
            value=message["event_json"].encode(),
            key=message["_id"].encode(),
            headers=[
                ("dlq-error", error.encode()),
                ("dlq-consumer", CONSUMER.encode()),
                ("dlq-attempts", str(message["attempts"]).encode()),
                ("dlq-recipient", message["recipient_id"].encode()),
                ("dlq-template", message["template"].encode()),
            ],
        )
        await self.store.update(
            message["_id"],
            {"status": "failed", "last_error": error, "failed_at": datetime.now(UTC)},
        )
        self.counts["failed"] += 1
        log.error("message failed", extra={"message_id": message["_id"], "error": error})
