"""The pause after an empty fetch (shared.kafka.FetchPacer, hold_empty_fetches): it grows
while nothing moves, ends as soon as work moves, is skipped for a fetch that went out before
work moved, and a resumed partition wakes aiokafka's fetch routine. The fetcher here is a
stand-in with the three members the wrapper uses; the real one is exercised by every
integration test's consumers and measured by benchmarks/pipeline_bench.py."""

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
    """aiokafka's Fetcher as hold_empty_fetches uses it."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self._wait_consume_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.notified = 0

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        await asyncio.sleep(0)
        return self.answers.pop(0)

    def _notify(self, future: asyncio.Future[None] | None) -> None:
        self.notified += 1
        if future is not None and not future.done():
            future.set_result(None)


class _Consumer:
    def __init__(self, fetcher: _Fetcher) -> None:
        self._fetcher = fetcher
        self._fetch_max_wait_ms = 500


async def test_empty_fetches_pause_and_a_resumed_partition_wakes_the_fetch_routine() -> None:
    fetcher = _Fetcher([False, True, False])
    pacer = hold_empty_fetches(_Consumer(fetcher), 0.01, 0.02)  # type: ignore[arg-type]
    assert pacer is not None
    fetch = fetcher._proc_fetch_request  # now the pacing wrapper

    assert await fetch(None, 0, None) is False
    assert pacer.empty_in_a_row == 1  # paused once
    assert await fetch(None, 0, None) is True
    assert pacer.empty_in_a_row == 0

    # A resume while an empty fetch is on its way: that fetch is not followed by a pause,
    # and the fetch routine is woken a moment later (not from inside the caller).
    pending = asyncio.create_task(fetch(None, 0, None))
    await asyncio.sleep(0)  # the fetch has gone out
    pacer.resumed()
    assert fetcher.notified == 0
    assert await asyncio.wait_for(pending, timeout=1) is False
    assert pacer.empty_in_a_row == 0
    await asyncio.sleep(0.05)
    assert fetcher.notified == 1
    assert fetcher._wait_consume_future.done()


async def test_no_pacing_when_the_pause_is_zero() -> None:
    fetcher = _Fetcher([False])
    original = fetcher._proc_fetch_request
    assert hold_empty_fetches(_Consumer(fetcher), 0) is None  # type: ignore[arg-type]
    assert fetcher._proc_fetch_request == original
