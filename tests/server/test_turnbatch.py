"""tlog/turnbatch.py: items handed over in one event-loop turn run together,
in order, each caller getting its own result or exception."""

from __future__ import annotations

import asyncio

import pytest

from tlog.turnbatch import TurnBatch


def _double_or_raise(item: int) -> int:
    if item < 0:
        raise ValueError(f"negative: {item}")
    return item * 2


@pytest.mark.parametrize("items", [[1], [1, 2, 3], [4, -1, 5], [-2, -3], list(range(50))])
async def test_each_caller_gets_its_own_outcome(items):
    batch = TurnBatch(_double_or_raise)
    futures = [batch.run(i) for i in items]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for item, outcome in zip(items, outcomes):
        if item < 0:
            assert isinstance(outcome, ValueError) and str(outcome) == f"negative: {item}"
        else:
            assert outcome == item * 2
    assert (batch.turns, batch.items) == (1, len(items))


@pytest.mark.parametrize("turns", [1, 2, 5])
async def test_one_flush_per_turn_in_arrival_order(turns):
    seen: list[int] = []
    batch = TurnBatch(lambda item: seen.append(item) or item)
    results = []
    for turn in range(turns):
        futures = [batch.run(turn * 10 + k) for k in range(3)]
        results += await asyncio.gather(*futures)
    assert seen == results == [t * 10 + k for t in range(turns) for k in range(3)]
    assert (batch.turns, batch.items) == (turns, 3 * turns)


async def test_items_from_concurrent_handlers_share_a_turn():
    batch = TurnBatch(_double_or_raise)

    async def handler(item: int) -> int:
        return await batch.run(item)

    assert await asyncio.gather(*(handler(i) for i in range(8))) == [i * 2 for i in range(8)]
    assert batch.turns == 1


async def test_a_cancelled_caller_is_skipped():
    calls: list[int] = []
    batch = TurnBatch(lambda item: calls.append(item) or item)
    first, second = batch.run(1), batch.run(2)
    first.cancel()
    assert await second == 2
    assert calls == [2] and first.cancelled()
