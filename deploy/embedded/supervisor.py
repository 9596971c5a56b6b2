"""Supervision for `make run`: a process that dies is started again (with backoff, and a line
that says so) instead of the whole stack stopping; an embedded Kafka broker that is alive but
no longer answers is restarted.

What this cannot promise is in the README ("What the embedded stack cannot promise").
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy.embedded.processes import Child

# Backoff between restarts of one process: 1 s, 2 s, 4 s ... 60 s; a process that stayed up
# for STABLE_SECONDS counts as healthy again and restarts from the shortest delay.
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
STABLE_SECONDS = 60.0


def kafka_serves(host: str, port: int, timeout: float = 3.0) -> bool:
    """True if a Kafka broker answers an ApiVersions request (v0) on host:port.

    Hand-written because the launcher is synchronous and this is one 10-byte request: a
    Kafka client library would need an event loop and a metadata round for the same answer.
    """
    client_id = b"launcher"
    correlation = 7
    body = struct.pack(">hhih", 18, 0, correlation, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _read_exactly(sock, 4)
            (size,) = struct.unpack(">i", head)
            answer = _read_exactly(sock, min(size, 64))
    except OSError:
        return False
    got_correlation, error_code = struct.unpack(">ih", answer[:6])
    return got_correlation == correlation and error_code == 0


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


@dataclass
class Supervised:
    """One process under supervision. `start` starts a replacement and returns it;
    `serves` (optional) tells whether a live process still does its job."""

    name: str
    child: Child
    start: Callable[[], Child]
    serves: Callable[[], bool] | None = None
    check_every: float = 5.0
    failures_before_restart: int = 3
    restarts: int = 0
    delay: float = FIRST_DELAY
    restart_at: float | None = None
    started_at: float = 0.0
    _next_check: float = 0.0
    _failed_checks: int = 0

    def __post_init__(self) -> None:
        self.started_at = time.monotonic()


class Supervisor:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.processes: list[Supervised] = []

    def watch(self, process: Supervised) -> None:
        self.processes.append(process)

    def tick(self) -> None:
        """Look at every process once; restart what died or stopped serving."""
        now = time.monotonic()
        for p in self.processes:
            if p.restart_at is not None:
                if now >= p.restart_at:
                    self._restart(p)
                continue
            if not p.child.alive():
                code = p.child.popen.poll()
                self._schedule(p, f"{p.name} exited (code {code})", now)
                continue
            if now - p.started_at > STABLE_SECONDS:
                p.delay = FIRST_DELAY
            if p.serves is not None and now >= p._next_check:
                p._next_check = now + p.check_every
                if p.serves():
                    p._failed_checks = 0
                else:
                    p._failed_checks += 1
                    if p._failed_checks >= p.failures_before_restart:
                        p._failed_checks = 0
                        self.say(f"{p.name} is running but does not answer; restarting it")
                        p.child.stop()
                        self._schedule(p, f"{p.name} stopped", now, delay=0.0)

    def _schedule(self, p: Supervised, what: str, now: float, delay: float | None = None) -> None:
        wait = p.delay if delay is None else delay
        tail = p.child.log_tail(5)
        self.say(
            f"{what}; restarting in {wait:.0f} s (restart #{p.restarts + 1})"
            + (f"\n  last lines of its log:\n{_indent(tail)}" if tail and delay is None else "")
        )
        p.restart_at = now + wait
        p.delay = min(p.delay * 2, MAX_DELAY)

    def _restart(self, p: Supervised) -> None:
        try:
            p.child = p.start()
        except RuntimeError as exc:
            self._schedule(p, f"{p.name} could not start ({exc})", time.monotonic())
            return
        p.restarts += 1
        p.restart_at = None
        p.started_at = time.monotonic()
        p._failed_checks = 0
        self.say(f"{p.name} restarted (restart #{p.restarts})")

    def children(self) -> list[Child]:
        return [p.child for p in self.processes]


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
