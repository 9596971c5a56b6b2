"""MongoDB helpers around PyMongo's native async client."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, WTimeoutError
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


def connect(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    # tz_aware so that datetimes read back compare with the timezone-aware ones we write.
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` after the transaction of `session` has committed (at once if the
    session is not in a transaction run by `in_transaction`). For wake-ups: a relay or a
    sender nudged before the commit reads nothing new and then sleeps until its next tick."""
    pending = _after_commit.get(id(session))
    if pending is None:
        callback()
    else:
        pending.append(callback)


async def in_transaction(
    client: AsyncMongoClient[dict[str, Any]],
    work: Callable[[AsyncClientSession], Awaitable[T]],
) -> T:
    """Run `work` inside one multi-document transaction, retried on transient errors; then
    run what `work` registered with `after_commit`."""
    async with client.start_session() as session:
        key = id(session)

        async def attempt(s: AsyncClientSession) -> T:
            _after_commit[key] = []  # a retried attempt starts with no callbacks
            return await work(s)

        try:
            result = await session.with_transaction(
                attempt,
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )
            callbacks = _after_commit.get(key, [])
        finally:
            _after_commit.pop(key, None)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")
    return result


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that say MongoDB is unreachable or busy (bad weather), as opposed to
    errors that say something about the data (bad message)."""
    if isinstance(exc, ConnectionFailure | WTimeoutError):
        return True
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
