"""The pause after an empty fetch (shared.kafka.FetchPacer, hold_empty_fetches): it grows
while nothing moves, ends as soon as work moves, is skipped for a fetch that went out before
work moved, and then aiokafka's fetch routine is woken once the fetch is no longer in
flight. The fetcher here is a stand-in with the members the wrapper uses and aiokafka's
order of done-callbacks; the real one runs under every integration test's consumers and is
measured by benchmarks/pipeline_bench.py."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.kafka import FetchPacer, hold_empty_fetches


async def test_a_pause_grows_while_nothing_moves_and_ends_when_work_moves() -> None:
    pacer = FetchPacer(0.01, 0.04)
    for _ in range(4):
        await pacer.pause()
    assert pacer.empty_in_a_row == 4

    waiting = asyncio.create_task(pacer.pause())  # would be the longest: 40 ms
    await asyncio.sleep(0)
    pacer.busy()
    await asyncio.wait_for(waiting, timeout=1)
    assert pacer.empty_in_a_row == 0  # the next pause starts short again


async def test_no_pause_after_a_fetch_that_went_out_before_work_moved() -> None:
    pacer = FetchPacer(30.0, 30.0)  # a pause that happened would stall this test
    seen = pacer.moves
    pacer.busy()  # records handed out while that fetch was on its way
    await asyncio.wait_for(pacer.pause(since=seen), timeout=1)
    assert pacer.empty_in_a_row == 0


class _Fetcher:
    """aiokafka's Fetcher as hold_empty_fetches uses it, and as its fetch routine starts a
    fetch: a task per node, marked in flight until the task's own done-callback (added
    when the task is made) clears the mark."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self._wait_consume_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight: set[int] = set()
        self.woken_while_in_flight: list[bool] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        await asyncio.sleep(0)
        return self.answers.pop(0)

    def _notify(self, future: asyncio.Future[None] | None) -> None:
        self.woken_while_in_flight.append(bool(self._in_flight))
        if future is not None and not future.done():
            future.set_result(None)

    def start_fetch(self, node_id: int = 0) -> asyncio.Task[bool]:
        task = asyncio.ensure_future(self._proc_fetch_request(None, node_id, None))
        self._in_flight.add(node_id)
        task.add_done_callback(lambda _: self._in_flight.discard(node_id))
        return task


class _Consumer:
    def __init__(self, fetcher: _Fetcher) -> None:
        self._fetcher = fetcher
        self._fetch_max_wait_ms = 500


async def _settled() -> None:
    for _ in range(5):  # done-callbacks run in the turns after a task ends
        await asyncio.sleep(0)


async def test_an_idle_consumer_pauses_after_empty_fetches_and_is_not_woken() -> None:
    fetcher = _Fetcher([False, False, True])
    pacer = hold_empty_fetches(_Consumer(fetcher), 0.01, 0.02)  # type: ignore[arg-type]
    assert pacer is not None
    assert await fetcher.start_fetch() is False
    assert await fetcher.start_fetch() is False
    assert pacer.empty_in_a_row == 2  # paused after each
    assert await fetcher.start_fetch() is True
    assert pacer.empty_in_a_row == 0
    await _settled()
    assert fetcher.woken_while_in_flight == []  # nothing moved: no extra wake-up


async def test_work_moving_during_a_fetch_skips_the_pause_and_wakes_the_routine_after() -> None:
    fetcher = _Fetcher([False])
    pacer = hold_empty_fetches(_Consumer(fetcher), 30.0)  # type: ignore[arg-type]
    assert pacer is not None
    fetch = fetcher.start_fetch()
    await asyncio.sleep(0)  # the fetch is out
    pacer.busy()  # a partition resumed meanwhile
    assert await asyncio.wait_for(fetch, timeout=1) is False  # no 30 s pause
    await _settled()
    # Woken once, and only after the node's in-flight mark was cleared, so the routine
    # may fetch the resumed partition at once.
    assert fetcher.woken_while_in_flight == [False]
    assert fetcher._wait_consume_future.done()


async def test_a_move_before_the_fetch_task_first_runs_still_counts() -> None:
    """aiokafka builds the request, makes the task, and the task runs a turn later: a
    resume in that turn is after the request, so the empty answer is not paused on."""
    fetcher = _Fetcher([False])
    pacer = hold_empty_fetches(_Consumer(fetcher), 30.0)  # type: ignore[arg-type]
    assert pacer is not None
    fetch = fetcher.start_fetch()
    pacer.busy()  # before the task's first step
    assert await asyncio.wait_for(fetch, timeout=1) is False
    await _settled()
    assert fetcher.woken_while_in_flight == [False]


async def test_no_pacing_when_the_pause_is_zero() -> None:
    fetcher = _Fetcher([False])
    original = fetcher._proc_fetch_request
    assert hold_empty_fetches(_Consumer(fetcher), 0) is None  # type: ignore[arg-type]
    assert fetcher._proc_fetch_request == original
