"""Bad weather: which dependency is away right now, said once when it goes and once when it
comes back, instead of one error line per failed call.

Kafka clients retry on their own and log every failed connection attempt; during a broker
restart that is thousands of ERROR lines that drown the ones that matter. `OutageNoise`
lowers those library lines to WARNING and lets one of a kind through per interval.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("dependencies")


class Dependency:
    """The reachability of one dependency (MongoDB, Kafka), as this process sees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.away_since: float | None = None

    @property
    def available(self) -> bool:
        return self.away_since is None

    def down(self, error: BaseException | str) -> None:
        if self.away_since is None:
            self.away_since = time.monotonic()
            log.warning(
                f"{self.name} unreachable; pausing and retrying until it is back",
                extra={"dependency": self.name, "error": repr(error)[:300]},
            )

    def up(self) -> None:
        if self.away_since is not None:
            away = time.monotonic() - self.away_since
            self.away_since = None
            log.warning(
                f"{self.name} reachable again after {away:.1f} s",
                extra={"dependency": self.name, "away_s": round(away, 1)},
            )


MONGODB = Dependency("MongoDB")
KAFKA = Dependency("Kafka")


class OutageNoise(logging.Filter):
    """Rate-limits and lowers the Kafka client's own error lines: at most one line of each
    kind per `interval` seconds, at WARNING."""

    def __init__(self, interval: float = 30.0, prefixes: tuple[str, ...] = ("aiokafka",)) -> None:
        super().__init__()
        self.interval = interval
        self.prefixes = prefixes
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes) or record.levelno < logging.WARNING:
            return True
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        kind = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            record.suppressed_similar = suppressed
        # A full traceback per reconnect attempt says nothing new.
        record.exc_info = None
        record.exc_text = None
        return True
