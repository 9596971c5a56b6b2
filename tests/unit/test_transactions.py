"""`shared.mongo.in_transaction`: a transaction that loses a write race is run again at once
with a short jittered pause, counted as a conflict, for at most the configured bound (not
PyMongo's fixed 120 s), and a conflict is never taken for MongoDB being away."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from pymongo.errors import NetworkTimeout, OperationFailure

from shared import mongo
from shared.consumer import is_bad_weather


def write_conflict() -> OperationFailure:
    return OperationFailure(
        "WriteConflict error: this operation conflicted with another operation.",
        112,
        {
            "ok": 0,
            "code": 112,
            "codeName": "WriteConflict",
            "errorLabels": ["TransientTransactionError"],
        },
    )


def unknown_commit_result() -> OperationFailure:
    return OperationFailure(
        "interrupted",
        11601,
        {"ok": 0, "code": 11601, "errorLabels": ["UnknownTransactionCommitResult"]},
    )


class FakeSession:
    """Stands in for a driver session: each commit fails with the next scripted error."""

    def __init__(self, commit_errors: list[Exception]) -> None:
        self.commit_errors = commit_errors
        self.in_transaction = False
        self.started = self.commits = self.aborts = 0

    async def start_transaction(self, **_: Any) -> None:
        self.in_transaction = True
        self.started += 1

    async def commit_transaction(self) -> None:
        self.commits += 1
        if self.commit_errors:
            error = self.commit_errors.pop(0)
            if error.__class__ is OperationFailure and cast(Any, error).code == 112:
                self.in_transaction = False  # the server aborted it
            raise error
        self.in_transaction = False

    async def abort_transaction(self) -> None:
        self.aborts += 1
        self.in_transaction = False


class FakeClient:
    def __init__(self, session: FakeSession) -> None:
        self.session = session

    @asynccontextmanager
    async def start_session(self) -> AsyncIterator[FakeSession]:
        yield self.session


def client_with(session: FakeSession, conflicts: list[int], seconds: float = 5.0) -> Any:
    client = FakeClient(session)
    mongo.configure_transactions(
        cast(Any, client), seconds=seconds, on_conflict=lambda: conflicts.append(1)
    )
    return client


async def test_a_conflict_is_run_again_at_once_and_counted() -> None:
    session = FakeSession([write_conflict(), write_conflict(), write_conflict()])
    conflicts: list[int] = []
    client = client_with(session, conflicts)
    woken: list[int] = []

    async def work(s: Any) -> str:
        mongo.after_commit(s, lambda: woken.append(session.started))
        return "done"

    started = time.monotonic()
    assert await mongo.in_transaction(client, work) == "done"
    assert time.monotonic() - started < 1.0  # milliseconds of backoff, not seconds
    assert session.started == 4 and len(conflicts) == 3
    assert woken == [4]  # only the attempt that committed wakes anyone


async def test_conflicts_past_the_bound_raise_the_conflict_not_a_timeout() -> None:
    session = FakeSession([write_conflict() for _ in range(10_000)])
    conflicts: list[int] = []
    client = client_with(session, conflicts, seconds=1.0)

    async def work(_: Any) -> None:
        return None

    started = time.monotonic()
    with pytest.raises(OperationFailure) as raised:
        await mongo.in_transaction(client, work)
    elapsed = time.monotonic() - started
    # It gives up when the next pause (at most 0.25 s) would pass the bound: within the
    # configured second, not PyMongo's 120 s.
    assert 1.0 - 0.25 <= elapsed < 2.5
    assert session.started > 5 and len(conflicts) == session.started
    # A conflict it stays: retried by the consumer, never an outage of MongoDB.
    assert mongo.is_conflict(raised.value)
    assert not mongo.is_unavailable(raised.value)
    assert not is_bad_weather(raised.value)


async def test_a_conflict_raised_by_the_work_is_retried_too() -> None:
    session = FakeSession([])
    conflicts: list[int] = []
    client = client_with(session, conflicts)
    calls: list[int] = []

    async def work(_: Any) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise write_conflict()
        return len(calls)

    assert await mongo.in_transaction(client, work) == 3
    assert session.aborts == 2 and session.commits == 1 and len(conflicts) == 2


async def test_other_errors_are_raised_at_once_after_an_abort() -> None:
    session = FakeSession([])
    conflicts: list[int] = []
    client = client_with(session, conflicts)

    async def work(_: Any) -> None:
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        await mongo.in_transaction(client, work)
    assert session.started == 1 and session.aborts == 1 and conflicts == []


async def test_a_commit_of_unknown_result_is_asked_again_not_the_transaction() -> None:
    session = FakeSession([unknown_commit_result(), unknown_commit_result()])
    conflicts: list[int] = []
    client = client_with(session, conflicts)

    async def work(_: Any) -> str:
        return "ok"

    assert await mongo.in_transaction(client, work) == "ok"
    assert session.started == 1 and session.commits == 3 and conflicts == []


def test_outages_and_conflicts_are_told_apart() -> None:
    away = OperationFailure(
        "not primary",
        10107,
        {"ok": 0, "code": 10107, "errorLabels": ["TransientTransactionError"]},
    )
    for error in (away, NetworkTimeout("timed out")):
        assert mongo.is_unavailable(error) and not mongo.is_conflict(error)
    assert mongo.is_conflict(write_conflict()) and not mongo.is_unavailable(write_conflict())
    assert not mongo.is_conflict(OperationFailure("duplicate key", 11000))


def test_the_backoff_is_short_jittered_and_grows() -> None:
    for attempt in range(12):
        ceiling = min(0.005 * 2**attempt, 0.25)
        pauses = [mongo.conflict_backoff(attempt) for _ in range(200)]
        assert all(0 <= p <= ceiling for p in pauses)
        assert len(set(pauses)) > 100  # jittered
    assert max(mongo.conflict_backoff(0) for _ in range(200)) <= 0.005  # all but at once
