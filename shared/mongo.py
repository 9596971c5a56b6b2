"""MongoDB helpers around PyMongo's native async client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

log = logging.getLogger(__name__)

T = TypeVar("T")
Session = AsyncClientSession

# Callbacks to run once the transaction of a session has committed, by session id. Kept
# outside the session object (a driver type) and cleared on every attempt, so a callback
# registered by an attempt that was retried or aborted never runs.
_after_commit: dict[int, list[Callable[[], None]]] = {}

# Server error codes that mean "the server is going away or not reachable right now".
_UNAVAILABLE_CODES = frozenset(
    {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 64, 50}
)
WRITE_CONFLICT = 112
# How long a conflicting transaction is retried (MONGO_TRANSACTION_SECONDS); far below
# PyMongo's 120 s, so that a lost race never holds a partition or a request for minutes.
DEFAULT_TRANSACTION_SECONDS = 10.0


def connect(uri: str, **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    """A client for `uri`; `options` are credentials and TLS
    (`shared.connections.mongo_client_options(settings)`)."""
    # tz_aware so that datetimes read back compare with the timezone-aware ones we write.
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000, **options)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` after the transaction of `session` has committed (at once if the
    session is not in a transaction run by `in_transaction`). For wake-ups: a relay or a
    sender nudged before the commit reads nothing new and then sleeps until its next tick."""
    pending = _after_commit.get(id(session))
    if pending is None:
        callback()
    else:
        pending.append(callback)


@dataclass
class _ClientHooks:
    client: weakref.ref[AsyncMongoClient[dict[str, Any]]]
    transaction_seconds: float
    on_conflict: Callable[[], None]


# Per client (by id, checked by a weak reference): the transaction time bound and what counts
# a conflict (a service's metrics). Registered by the service's consumer (shared/consumer.py).
_hooks: dict[int, _ClientHooks] = {}


def configure_transactions(
    client: AsyncMongoClient[dict[str, Any]],
    *,
    seconds: float = DEFAULT_TRANSACTION_SECONDS,
    on_conflict: Callable[[], None] | None = None,
) -> None:
    """Set the time bound of `in_transaction` for `client`, and a callback run once per
    conflict (a transaction that lost a race), e.g. a metric's `inc`."""
    _hooks[id(client)] = _ClientHooks(weakref.ref(client), seconds, on_conflict or _nothing)


def _hooks_of(client: AsyncMongoClient[dict[str, Any]]) -> _ClientHooks | None:
    hooks = _hooks.get(id(client))
    return hooks if hooks is not None and hooks.client() is client else None


def _nothing() -> None:
    pass


async def in_transaction(
    client: AsyncMongoClient[dict[str, Any]],
    work: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    seconds: float | None = None,
) -> T:
    """Run `work` inside one multi-document transaction, then run what `work` registered with
    `after_commit`.

    A transaction that loses a race (a write conflict: another transaction wrote the same
    document; see `is_conflict`) is aborted and run again at once, after a short jittered
    pause that grows with each attempt, for at most `seconds` (MONGO_TRANSACTION_SECONDS, via
    `configure_transactions`); after that the last conflict is raised (a conflict, still:
    the consumer tries again without calling it an outage). Other transient errors (a
    connection lost mid-transaction) are retried within the same bound, as is a commit
    whose result is unknown.

    Our own loop, not PyMongo's `ClientSession.with_transaction`: that one retries for a fixed
    120 s (`_WITH_TRANSACTION_RETRY_TIME_LIMIT` in pymongo/client_session_shared.py, not
    configurable) and then raises a NetworkTimeout, which reads as "MongoDB unreachable";
    under contention every writer then waited minutes behind one conflicting transaction."""
    hooks = _hooks_of(client)
    limit = (
        seconds
        if seconds is not None
        else (hooks.transaction_seconds if hooks is not None else DEFAULT_TRANSACTION_SECONDS)
    )
    on_conflict = hooks.on_conflict if hooks is not None else _nothing
    deadline = time.monotonic() + limit
    attempt = 0
    async with client.start_session() as session:
        key = id(session)
        try:
            while True:
                _after_commit[key] = []  # a retried attempt starts with no callbacks
                try:
                    result = await _attempt(session, work, deadline)
                except PyMongoError as exc:
                    conflict = is_conflict(exc)
                    if not conflict and not exc.has_error_label("TransientTransactionError"):
                        raise
                    if conflict:
                        on_conflict()
                    pause = conflict_backoff(attempt)
                    if time.monotonic() + pause >= deadline:
                        raise
                    attempt += 1
                    await asyncio.sleep(pause)
                    continue
                callbacks = _after_commit.get(key, [])
                break
        finally:
            _after_commit.pop(key, None)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")
    return result


async def _attempt(
    session: AsyncClientSession,
    work: Callable[[AsyncClientSession], Awaitable[T]],
    deadline: float,
) -> T:
    """One try: start, run `work`, commit (the commit alone retried while its result is
    unknown). Aborts on any failure."""
    await session.start_transaction(
        read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
    )
    try:
        result = await work(session)
    except BaseException:
        if session.in_transaction:
            with contextlib.suppress(PyMongoError):
                await session.abort_transaction()
        raise
    if not session.in_transaction:
        return result  # `work` ended the transaction itself
    while True:
        try:
            await session.commit_transaction()
            return result
        except PyMongoError as exc:
            unknown = exc.has_error_label("UnknownTransactionCommitResult")
            if unknown and not _max_time_expired(exc) and time.monotonic() < deadline:
                continue  # commit is idempotent: ask again
            raise


def conflict_backoff(attempt: int) -> float:
    """Seconds to wait before re-running a transaction that lost its `attempt`-th race: full
    jitter up to 5 ms, doubling, at most 250 ms (the first retry is all but immediate)."""
    return random.uniform(0, min(0.005 * 2**attempt, 0.25))


def _max_time_expired(exc: PyMongoError) -> bool:
    return isinstance(exc, OperationFailure) and exc.code == 50


def is_conflict(exc: BaseException) -> bool:
    """True for a transaction that lost a race with another one (WriteConflict, or another
    TransientTransactionError that does not say the server is away): run it again soon; it
    says nothing about MongoDB's health."""
    if not isinstance(exc, PyMongoError) or isinstance(exc, ConnectionFailure | WTimeoutError):
        return False
    code = exc.code if isinstance(exc, OperationFailure) else None
    if code in _UNAVAILABLE_CODES:
        return False
    if code == WRITE_CONFLICT:
        return True
    if isinstance(exc, BulkWriteError):
        errors = (exc.details or {}).get("writeErrors") or []
        if any(e.get("code") == WRITE_CONFLICT for e in errors):
            return True
    return exc.has_error_label("TransientTransactionError")


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that say MongoDB is unreachable or busy (bad weather), as opposed to
    errors that say something about the data (bad message)."""
    if isinstance(exc, ConnectionFailure | WTimeoutError):
        return True
    if is_conflict(exc):
        return False  # a lost race, not bad weather
    if isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError")
        or exc.has_error_label("UnknownTransactionCommitResult")
        or exc.has_error_label("RetryableWriteError")
    ):
        return True
    return isinstance(exc, OperationFailure) and exc.code in _UNAVAILABLE_CODES


async def ping(db: AsyncDatabase[dict[str, Any]]) -> bool:
    try:
        await db.command("ping")
    except Exception:
        return False
    return True
