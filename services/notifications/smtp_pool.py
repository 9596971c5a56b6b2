"""E-mail over a small pool of reused SMTP connections, with a bound on concurrent sends and
an optional rate limit (a relay's messages per second).

aiosmtplib gives one connection (`aiosmtplib.SMTP`) that carries one message at a time, and
a `send()` helper that opens a new connection per message: connect, EHLO, maybe STARTTLS and
AUTH, a look-up of the local host name, then QUIT. Reusing connections is what makes bulk
delivery fast, and no maintained library pools aiosmtplib connections, so this module does:
idle connections are kept (most recently used first), a broken one is replaced, one left
idle too long is closed, and a connection is retired after `max_messages_per_connection`
(relays cap messages per session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field
from email.message import Message

import aiosmtplib

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    """Who the SMTP conversation names (MAIL FROM, RCPT TO), as bare addresses."""

    sender: str
    recipients: list[str]


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


class RateLimit:
    """At most `per_second` sends start per second, evenly spaced: a relay that allows N
    messages per second never sees a burst above it. None or 0 means no limit."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self.interval  # reserve the slot before sleeping: no races
        if start > now:
            await asyncio.sleep(start - now)


def is_permanent(exc: BaseException) -> bool:
    """The relay refused every recipient for good (5xx): trying again cannot help."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPRecipientRefused) and exc.code >= 500


# The connection itself failed (not the server's answer to this message): replace it.
BROKEN = (ConnectionError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError)


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    sent: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class PoolStats:
    opened: int = 0
    reused: int = 0
    replaced: int = 0  # reused connections found broken and replaced by a new one
    in_flight: int = 0
    peak_in_flight: int = 0


class Mailer:
    """Sends messages over at most `connections` SMTP connections at once."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        connections: int = 4,
        per_second: float | None = None,
        max_messages_per_connection: int = 100,
        idle_seconds: float = 30.0,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.config = config
        self.connections = connections
        self.max_messages_per_connection = max_messages_per_connection
        self.idle_seconds = idle_seconds
        self.rate = RateLimit(per_second)
        self.stats = PoolStats()
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []  # most recently used last
        self._local_hostname: str | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def send(self, message: Message, envelope: Envelope | None = None) -> None:
        """Send one message; returns once the server accepted it, raises otherwise.
        `envelope` (sender, recipients) saves parsing them back out of the headers."""
        async with self._slots:
            self.stats.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
            try:
                await self.rate.wait()
                await self._send(message, envelope)
            finally:
                self.stats.in_flight -= 1

    async def _send(self, message: Message, envelope: Envelope | None) -> None:
        sender = envelope.sender if envelope else None
        recipients = envelope.recipients if envelope else None
        conn = self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._open()
        try:
            await conn.smtp.send_message(message, sender=sender, recipients=recipients)
        except BROKEN:
            self._discard(conn)
            if not reused:
                raise
            # A kept connection the server had closed meanwhile (idle timeout, restart):
            # one more try on a fresh one before this counts as a failed attempt.
            self.stats.replaced += 1
            conn = await self._open()
            try:
                await conn.smtp.send_message(message, sender=sender, recipients=recipients)
            except BaseException:
                self._discard(conn)
                raise
        except aiosmtplib.SMTPResponseException:
            # The server refused this message and aiosmtplib reset the envelope (RSET):
            # the connection itself is fine.
            self._give_back(conn)
            raise
        except BaseException:
            self._discard(conn)
            raise
        conn.sent += 1
        self._give_back(conn)

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.smtp.is_connected and now - conn.last_used < self.idle_seconds:
                self.stats.reused += 1
                return conn
            self._retire(conn)
        return None

    async def _open(self) -> _Connection:
        c = self.config
        if self._local_hostname is None:
            # aiosmtplib would look it up (in a thread, maybe via DNS) on every connect.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            start_tls=c.start_tls,
            use_tls=c.use_tls,
            timeout=c.timeout,
            local_hostname=self._local_hostname,
        )
        await smtp.connect()
        self.stats.opened += 1
        return _Connection(smtp)

    def _give_back(self, conn: _Connection) -> None:
        if not conn.smtp.is_connected or conn.sent >= self.max_messages_per_connection:
            self._retire(conn)
            return
        conn.last_used = time.monotonic()
        self._idle.append(conn)
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(self.idle_seconds, self._reap)

    def _reap(self) -> None:
        """Close connections idle for `idle_seconds`; relays drop them after a while anyway,
        and an idle service should hold nothing open."""
        self._reaper = None
        cutoff = time.monotonic() - self.idle_seconds
        stale = [c for c in self._idle if c.last_used <= cutoff]
        self._idle = [c for c in self._idle if c.last_used > cutoff]
        for conn in stale:
            self._retire(conn)
        if self._idle:
            delay = self._idle[0].last_used + self.idle_seconds - time.monotonic()
            self._reaper = asyncio.get_running_loop().call_later(max(delay, 0.01), self._reap)

    def _retire(self, conn: _Connection) -> None:
        """Say QUIT in the background (politely, bounded by the timeout), then close."""
        task = asyncio.get_running_loop().create_task(self._quit(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _quit(conn: _Connection) -> None:
        try:
            if conn.smtp.is_connected:
                await conn.smtp.quit()
        except Exception:
            pass  # it is going away either way
        finally:
            conn.smtp.close()

    @staticmethod
    def _discard(conn: _Connection) -> None:
        conn.smtp.close()

    async def close(self) -> None:
        """Close every idle connection (sends in flight keep theirs until they finish)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            self._retire(conn)
        if self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._closing, return_exceptions=True),
                    timeout=self.config.timeout,
                )

    @property
    def idle_connections(self) -> int:
        return len(self._idle)
