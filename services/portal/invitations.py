"""Mailing the roster's invitations in the background of the portal process.

The upload stores each new student with `invitation_state: waiting` and answers at once; this
loop claims one invitation at a time (an atomic update, so a second portal process or a
restart never mails anyone twice), sends it, and records `invitation_sent_at` or the failure,
at most ROSTER_INVITATIONS_PER_SECOND a second. What is still waiting after a restart is sent
then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import aiosmtplib

from services.portal.domain import digest
from services.portal.mailer import PortalMailer
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from shared.documents import utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # for invitations another portal process queued, and retries coming due
ATTEMPTS = 3  # a relay that is down for a while is tried again, 1 and 2 minutes later
# Longer than any send takes (SMTP_TIMEOUT_SECONDS per step): a claim this old was abandoned.
ABANDONED_AFTER = timedelta(minutes=10)
LOG_EVERY = 50


def permanent(exc: Exception) -> bool:
    """The relay refused the message itself (5xx, or the recipient): trying again won't help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600


class InvitationSender:
    def __init__(self, store: PortalStore, mailer: PortalMailer, settings: PortalSettings) -> None:
        self.store = store
        self.mailer = mailer
        self.interval = 1 / settings.roster_invitations_per_second
        self.url = f"{settings.public_base_url.rstrip('/')}/sign-in?next=/student/profile"
        self.stopping = False
        self._wake = asyncio.Event()
        self._since_log = 0

    def wake(self) -> None:
        """An upload queued invitations: start now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while not self.stopping:
            started = time.monotonic()
            try:
                user = await self.store.claim_invitation(utcnow())
            except Exception:
                log.warning("roster invitations: the portal database did not answer; retrying")
                await self._idle()
                continue
            if user is None:
                await self._idle()
                continue
            try:
                await self.send(user)
            except Exception:
                # Not recorded: the claim is abandoned and counted failed later, never resent.
                log.exception("roster invitations: the outcome could not be recorded")
            # Paced from the start of each send: never more than the rate, whatever SMTP takes.
            await asyncio.sleep(max(0.0, started + self.interval - time.monotonic()))

    async def send(self, user: dict[str, Any]) -> None:
        email = str(user["_id"])
        try:
            # Students read the program in Traditional Chinese by default.
            await self.mailer.send_invitation(email, user.get("name") or "", "zh-TW", self.url)
        except Exception as exc:
            attempts = int(user.get("invitation_attempts", 0)) + 1
            retry = not permanent(exc) and attempts < ATTEMPTS
            now = utcnow()
            retry_at = now + timedelta(minutes=attempts) if retry else None
            await self.store.invitation_failed(email, now, error_text(exc), retry_at)
            log.warning(
                "roster invitation could not be sent%s",
                "; trying again later" if retry else "",
                extra={"recipient": digest(email)[:12], "error": type(exc).__name__},
            )
        else:
            await self.store.invitation_sent(email, utcnow())
        self._since_log += 1
        if self._since_log >= LOG_EVERY:
            await self.log_progress()

    async def _idle(self) -> None:
        if self._since_log:
            await self.log_progress()
        try:
            await self.store.fail_abandoned_invitations(utcnow() - ABANDONED_AFTER, utcnow())
        except Exception:
            log.warning("roster invitations: could not look for abandoned ones")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        self._wake.clear()

    async def log_progress(self) -> None:
        self._since_log = 0
        try:
            counts = await self.store.invitation_counts()
        except Exception:
            return
        log.info(
            "roster invitations: %s sent, %s waiting, %s failed",
            counts["sent"],
            counts["waiting"] + counts["sending"],
            counts["failed"],
            extra={"invitations": counts},
        )

    async def stop(self, task: asyncio.Task[None], timeout: float = 10) -> None:
        """Let the send under way finish (the next waits for the restart), then stop."""
        self.stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout)


def error_text(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} {code}" if isinstance(code, int) else type(exc).__name__
